"""One classification of CloudTrail calls: what each call does to the account.

    kind_of(event)          # → read_secret | read_data | share_data | read | create | delete | change |
                            #   iam_change | other
    data_access_calls()     # the data kinds as `queries/data_access_events.sql` binds them
    own_cleanup(events)     # deletions of what the same actor created earlier in the events

The damage answer (changed, deleted, data read), the intent answer (data theft, destruction
versus cleanup), the investigation's `data_access` (the query is bound with
`data_access_calls()`) and the report's impact tables all read calls through this module. They
used to keep a list each, and disagreed: "nothing read" beside a data-read section and a
data-theft intent. One home means one answer.

The data kinds are what a leak is made of: `read_secret` (the call returns a secret: Secrets
Manager values, SSM parameters, KMS plaintext, an instance's Windows password), `read_data` (the
call returns stored data: S3 objects, DynamoDB items, instance user data, container images, code)
and `share_data` (the call hands a copy to someone else: a snapshot or image shared, bucket
replication). Everything else is classified by the verb that starts the event name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from keyresponse.intel.events import Event, json_field, service_of, sorted_events

READ_SECRET = "read_secret"  # noqa: S105 - a kind of call, not a password
READ_DATA = "read_data"
SHARE_DATA = "share_data"
READ = "read"
CREATE = "create"
DELETE = "delete"
CHANGE = "change"
IAM_CHANGE = "iam_change"
OTHER = "other"
KINDS = (READ_SECRET, READ_DATA, SHARE_DATA, READ, CREATE, DELETE, CHANGE, IAM_CHANGE, OTHER)
#: The kinds that make a data-access finding: what the report's data section and "data read" list.
DATA_KINDS = frozenset({READ_SECRET, READ_DATA, SHARE_DATA})
#: Changes that are about who may do what (IAM users, roles, policies, logins, MFA).
WRITE_KINDS = frozenset({CHANGE, IAM_CHANGE})

#: (service, EventName) → data kind. The service is the eventSource before ".amazonaws.com".
DATA_CALLS: Mapping[tuple[str, str], str] = {
    ("secretsmanager", "GetSecretValue"): READ_SECRET,
    ("secretsmanager", "BatchGetSecretValue"): READ_SECRET,
    ("ssm", "GetParameter"): READ_SECRET,
    ("ssm", "GetParameters"): READ_SECRET,
    ("ssm", "GetParametersByPath"): READ_SECRET,
    ("ssm", "GetParameterHistory"): READ_SECRET,
    ("kms", "Decrypt"): READ_SECRET,
    ("ec2", "GetPasswordData"): READ_SECRET,
    ("s3", "GetObject"): READ_DATA,
    ("s3", "SelectObjectContent"): READ_DATA,
    ("s3", "CopyObject"): READ_DATA,
    ("dynamodb", "GetItem"): READ_DATA,
    ("dynamodb", "BatchGetItem"): READ_DATA,
    ("dynamodb", "Query"): READ_DATA,
    ("dynamodb", "Scan"): READ_DATA,
    ("dynamodb", "ExportTableToPointInTime"): READ_DATA,
    ("ec2", "DescribeInstanceAttribute"): READ_DATA,
    ("ecr", "BatchGetImage"): READ_DATA,
    ("ecr", "GetDownloadUrlForLayer"): READ_DATA,
    ("codecommit", "GitPull"): READ_DATA,
    ("athena", "GetQueryResults"): READ_DATA,
    ("ec2", "ModifySnapshotAttribute"): SHARE_DATA,
    ("ec2", "ModifyImageAttribute"): SHARE_DATA,
    ("rds", "ModifyDBSnapshotAttribute"): SHARE_DATA,
    ("rds", "ModifyDBClusterSnapshotAttribute"): SHARE_DATA,
    ("s3", "PutBucketReplication"): SHARE_DATA,
}
#: Calls that read data only for one value of their `attribute` request parameter: the rest of
#: DescribeInstanceAttribute is inventory, its `userData` often holds secrets.
DATA_ATTRIBUTE: Mapping[tuple[str, str], str] = {("ec2", "DescribeInstanceAttribute"): "userData"}

READ_PREFIXES = ("List", "Describe", "Get", "Head", "Lookup", "Search", "BatchGet", "Scan", "Check", "Simulate")
DELETE_PREFIXES = ("Delete", "Terminate", "Remove", "Detach", "Disable", "Deregister", "Revoke", "Cancel",
                   "ScheduleKeyDeletion", "Stop", "Leave", "Disassociate", "BatchDelete")
CREATE_PREFIXES = ("Create", "Run", "Import", "Allocate", "Launch", "Register", "Purchase")
CHANGE_PREFIXES = ("Put", "Update", "Modify", "Attach", "Authorize", "Enable", "Set", "Add", "Replace",
                   "Associate", "Upload", "Tag", "Untag", "Copy", "Restore", "Reboot", "Start", "Change", "Resync")
IAM_SERVICES = frozenset({"iam", "sts", "signin", "sso", "identitystore", "rolesanywhere"})

#: Calls that change who can do what, mint credentials, read secrets, launch compute or blind
#: logging (by event name): from an address new to the key, and never made by the key before, they
#: are attacker evidence in `keyresponse.judgement`.
HIGH_RISK_CALLS = frozenset({
    # identity and credentials
    "CreateUser", "CreateAccessKey", "CreateLoginProfile", "UpdateLoginProfile", "AttachUserPolicy",
    "AttachRolePolicy", "AttachGroupPolicy", "PutUserPolicy", "PutRolePolicy", "PutGroupPolicy", "AddUserToGroup",
    "UpdateAssumeRolePolicy", "CreateRole", "CreatePolicyVersion", "SetDefaultPolicyVersion",
    "CreateVirtualMFADevice", "EnableMFADevice", "DeactivateMFADevice", "DeleteUserPermissionsBoundary",
    "DeleteRolePermissionsBoundary", "GetSessionToken", "GetFederationToken", "CreateServiceSpecificCredential",
    # secrets
    "GetSecretValue", "BatchGetSecretValue", "GetPasswordData",
    # compute and network
    "RunInstances", "CreateKeyPair", "ImportKeyPair", "AuthorizeSecurityGroupIngress", "CreateFunction",
    "CreateFunction20150331", "ModifyInstanceAttribute", "SendCommand", "StartSession",
    # defence evasion
    "StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "DeleteDetector", "DisableSecurityHub",
    "DeleteFlowLogs", "LeaveOrganization", "PutBucketPolicy", "PutBucketAcl", "DeleteBucketPolicy",
    "PutAccountDetails", "UpdateAccountSendingEnabled",
})

#: Request parameters that name the one resource a call acts on, most specific first.
RESOURCE_PARAMS = ("userName", "roleName", "bucketName", "functionName", "trailName", "name", "instanceId",
                   "groupId", "secretId", "keyId", "detectorId", "policyArn", "imageId", "snapshotId",
                   "dBSnapshotIdentifier", "groupName", "volumeId", "dBInstanceIdentifier", "tableName", "keyName",
                   "instanceProfileName", "layerName", "key", "Name")
#: Response fields (top level, or one object down) that carry the id of what a create call made.
CREATED_FIELDS = ("instanceId", "snapshotId", "volumeId", "imageId", "groupId", "keyId", "arn", "accessKeyId",
                  "userName", "roleName", "groupName", "functionName", "functionArn", "keyName", "allocationId",
                  "dBInstanceIdentifier", "dBSnapshotIdentifier", "tableName", "secretId", "name", "trailARN")
_INSTANCE_SESSION = re.compile(r":assumed-role/[^/]+/(i-[0-9a-fA-F]{8,17})$")


def call_of(event: Event) -> tuple[str, str]:
    """(service, EventName): `("s3", "GetObject")`."""
    return service_of(event), str(event.get("event_name") or "")


def _data_kind(event: Event) -> str | None:
    call = call_of(event)
    kind = DATA_CALLS.get(call)
    if kind is None:
        return None
    wanted = DATA_ATTRIBUTE.get(call)
    if wanted is not None:
        params = json_field(event, "request_parameters")
        if not isinstance(params, Mapping) or params.get("attribute") != wanted:
            return None
    return kind


def kind_of(event: Event) -> str:
    """What the call does, one of `KINDS` (failed calls are classified too: check `error_code`)."""
    data = _data_kind(event)
    if data:
        return data
    service, name = call_of(event)
    if name.startswith(READ_PREFIXES):
        return READ
    if name.startswith(DELETE_PREFIXES):
        return DELETE
    if name.startswith(CREATE_PREFIXES):
        return CREATE
    if name.startswith(CHANGE_PREFIXES):
        return IAM_CHANGE if service in IAM_SERVICES else CHANGE
    return OTHER


def is_data_access(event: Event) -> bool:
    return kind_of(event) in DATA_KINDS


def data_access_calls() -> list[str]:
    """The data kinds as `queries/data_access_events.sql` binds them: `eventsource:EventName`, and
    `eventsource:EventName:attribute` for a call that reads data for one attribute only."""
    out = []
    for (service, name), _kind in sorted(DATA_CALLS.items()):
        source = f"{service}.amazonaws.com:{name}"
        wanted = DATA_ATTRIBUTE.get((service, name))
        out.append(f"{source}:{wanted}" if wanted else source)
    return out


# -- resources a call names ------------------------------------------------------------------------


def _instance_items(value: Any) -> list[str]:
    items = value.get("instancesSet", {}).get("items") if isinstance(value, Mapping) and isinstance(
        value.get("instancesSet"), Mapping) else None
    if not isinstance(items, list):
        return []
    return [str(i["instanceId"]) for i in items if isinstance(i, Mapping) and i.get("instanceId")]


def resource_of(event: Event) -> str:
    """The resource the call names in its request ("" when none): a user, bucket, instance(s)…"""
    params = json_field(event, "request_parameters")
    if not isinstance(params, Mapping):
        return ""
    for key in RESOURCE_PARAMS:
        if params.get(key) and not isinstance(params[key], Mapping | list):
            return str(params[key])
    return ",".join(_instance_items(params))


def targets(event: Event) -> set[str]:
    """Every resource id the request acts on (the instances of a TerminateInstances, the user of a
    DeleteUser…); empty when the request names none."""
    params = json_field(event, "request_parameters")
    found = set(_instance_items(params))
    if not found and (named := resource_of(event)):
        found.add(named)
    return found


def created_ids(event: Event) -> set[str]:
    """The ids of what a successful create call made: from its response (instance ids, ARNs, key
    ids…) and the name it asked for. Empty for any other call."""
    if event.get("error_code") or kind_of(event) != CREATE:
        return set()
    response = json_field(event, "response_elements")
    found = set(_instance_items(response))
    if not found:
        found |= {resource_of(event)} - {""}
        if isinstance(response, Mapping):
            for value in (response, *(v for v in response.values() if isinstance(v, Mapping))):
                found |= {str(value[f]) for f in CREATED_FIELDS if isinstance(value.get(f), str | int) and value[f]}
    return found


def own_cleanup(events: Sequence[Event]) -> list[Event]:
    """Deletions of resources the same events created earlier: an actor (an attack tool, a test)
    tearing down its own instances, functions or users. That is cleanup, not destruction: nothing
    of the account's own was lost."""
    made: set[str] = set()
    out = []
    for event in sorted_events(events):
        made |= created_ids(event)
        if kind_of(event) == DELETE and (hit := targets(event)) and hit <= made:
            out.append(event)
    return out


def instance_credential(event: Event | None) -> str | None:
    """The EC2 instance whose role credentials made the call (the session is named after the
    instance, or CloudTrail marks the EC2 role delivery), else None."""
    if not event:
        return None
    if m := _INSTANCE_SESSION.search(str(event.get("principal_arn") or "")):
        return m.group(1)
    identity = event.get("user_identity")
    if isinstance(identity, Mapping):
        ctx = identity.get("sessionContext")
        if isinstance(ctx, Mapping) and ctx.get("ec2RoleDelivery"):
            return str(identity.get("arn") or "instance role")
    return None
