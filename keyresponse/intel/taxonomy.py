"""One classification of CloudTrail calls: what each call does to the account.

    kind_of(event)          # → read_secret | read_data | share_data | read | create | delete | change |
                            #   iam_change | other
    data_access_calls()     # the data kinds as `queries/data_access_events.sql` binds them
    own_cleanup(events)     # deletions of what the same actor created earlier in the events
    category_of(event)      # → recon | credentials | persistence | data_access | compute |
                            #   defense_evasion | other: what the call was for (the report's lanes)

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

The activity categories (`ACTIVITIES`, `category_of`) answer another question: what the attacker
was doing with the call. They are the lanes of the report's activity chart and its per-category
counts, and carry the MITRE ATT&CK tactics they correspond to, and the (sub-)techniques of the calls
that ATT&CK itself names (names in `ATTACK`). The report kept the name lists itself; they are data
here so that a second copy cannot drift from the first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

#: Every read_secret call by name (the report's "secrets" list and its rotation advice).
SECRET_READS = frozenset(name for (_, name), kind in DATA_CALLS.items() if kind == READ_SECRET)
#: Services that store named secrets: a read there names a secret to rotate (kms:Decrypt names a key,
#: ec2:GetPasswordData an instance).
SECRET_STORES = frozenset({"secretsmanager", "ssm"})
#: The read_secret calls of `SECRET_STORES` by name: the damage answer's secrets to rotate.
STORED_SECRET_READS = frozenset(name for (service, name), kind in DATA_CALLS.items()
                                if kind == READ_SECRET and service in SECRET_STORES)
#: S3 object reads by name (the report's data-notification advice).
OBJECT_READS = frozenset(name for (service, name), kind in DATA_CALLS.items() if kind == READ_DATA and service == "s3")


# -- activity: what each call was for (the report's lanes) -------------------------------------------

#: MITRE ATT&CK ids used below, with their names (enterprise matrix).
ATTACK: Mapping[str, str] = {
    "TA0002": "Execution",
    "TA0003": "Persistence",
    "TA0004": "Privilege Escalation",
    "TA0005": "Defense Evasion",
    "TA0006": "Credential Access",
    "TA0007": "Discovery",
    "TA0009": "Collection",
    "TA0040": "Impact",
    "T1098.001": "Account Manipulation: Additional Cloud Credentials",
    "T1136.003": "Create Account: Cloud Account",
    "T1496": "Resource Hijacking",
    "T1530": "Data from Cloud Storage",
    "T1555.006": "Credentials from Password Stores: Cloud Secrets Management Stores",
    "T1562.008": "Impair Defenses: Disable or Modify Cloud Logs",
    "T1651": "Cloud Administration Command",
}


@dataclass(frozen=True)
class Activity:
    """One activity category: a lane of the report's chart.

    `events` are the calls (by EventName) that belong to it; recon and other have none, they are
    rules (`category_of`). `tactics` are the ATT&CK tactics the lane's calls serve, `techniques` the
    ATT&CK (sub-)technique of each call ATT&CK itself files under one."""

    key: str
    label: str
    tactics: tuple[str, ...] = ()
    techniques: Mapping[str, str] = field(default_factory=dict)
    events: frozenset[str] = frozenset()


RECON = "recon"
CREDENTIALS = "credentials"
PERSISTENCE = "persistence"
DATA_ACCESS = "data_access"
COMPUTE = "compute"
DEFENSE_EVASION = "defense_evasion"
#: A call of no other category ("other", as the kind of a call no verb classifies).
OTHER_ACTIVITY = OTHER

#: The categories in the report's chart order. Credentials: ATT&CK files a credential the attacker
#: adds for itself (CreateAccessKey, a login profile) under T1098.001, a Persistence and Privilege
#: Escalation technique; Credential Access (TA0006) is taking credentials that exist, which is
#: what the secret reads of data_access do (T1555.006). Data access is Collection (T1530 for S3
#: objects); a copy handed to another account (Exfiltration, T1537) is a snapshot or image share,
#: which this map counts as persistence. Compute launched on the account's bill is Resource
#: Hijacking (T1496, an Impact technique); commands run on instances through SSM are T1651.
ACTIVITIES: tuple[Activity, ...] = (
    Activity(RECON, "recon", tactics=("TA0007",)),
    Activity(CREDENTIALS, "credentials", tactics=("TA0003", "TA0004"),
             techniques={"CreateAccessKey": "T1098.001", "CreateLoginProfile": "T1098.001"},
             events=frozenset({
                 "CreateAccessKey", "UpdateAccessKey", "GetSessionToken", "GetFederationToken", "AssumeRole",
                 "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "GetSigninToken", "CreateLoginProfile",
                 "UpdateLoginProfile", "ChangePassword", "CreateServiceSpecificCredential", "UploadSSHPublicKey",
                 "CreateVirtualMFADevice", "EnableMFADevice", "DeactivateMFADevice", "ResyncMFADevice",
                 "GetRoleCredentials"})),
    Activity(PERSISTENCE, "persistence", tactics=("TA0003",),
             techniques={"CreateUser": "T1136.003", "CreateKeyPair": "T1098.001", "ImportKeyPair": "T1098.001"},
             events=frozenset({
                 "CreateUser", "CreateRole", "CreateGroup", "AddUserToGroup", "AttachUserPolicy", "AttachRolePolicy",
                 "AttachGroupPolicy", "PutUserPolicy", "PutRolePolicy", "PutGroupPolicy", "CreatePolicy",
                 "CreatePolicyVersion", "SetDefaultPolicyVersion", "UpdateAssumeRolePolicy",
                 "PutUserPermissionsBoundary", "DeleteUserPermissionsBoundary", "DeleteRolePermissionsBoundary",
                 "CreateInstanceProfile", "AddRoleToInstanceProfile", "CreateOpenIDConnectProvider",
                 "CreateSAMLProvider", "ImportKeyPair", "CreateKeyPair", "AuthorizeSecurityGroupIngress",
                 "ModifyImageAttribute", "ModifySnapshotAttribute", "PutBucketPolicy", "PutBucketAcl",
                 "CreateEventSubscription", "PutRule", "PutTargets"})),
    Activity(DATA_ACCESS, "data access", tactics=("TA0009", "TA0006"),
             techniques={"GetObject": "T1530", "GetSecretValue": "T1555.006", "BatchGetSecretValue": "T1555.006"},
             events=frozenset({
                 "GetObject", "PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "SelectObjectContent",
                 "RestoreObject", "GetSecretValue", "BatchGetSecretValue", "GetParameter", "GetParameters",
                 "GetParametersByPath", "Decrypt", "GenerateDataKey", "Scan", "Query", "GetItem", "BatchGetItem",
                 "ExportTableToPointInTime", "CreateSnapshot", "CopySnapshot", "CreateDBSnapshot",
                 "GetQueryResults", "StartQueryExecution"})),
    Activity(COMPUTE, "compute", tactics=("TA0040", "TA0002"),
             techniques={"RunInstances": "T1496", "RequestSpotInstances": "T1496", "RequestSpotFleet": "T1496",
                         "CreateFleet": "T1496", "SendCommand": "T1651"},
             events=frozenset({
                 "RunInstances", "StartInstances", "RequestSpotInstances", "RequestSpotFleet", "CreateFleet",
                 "CreateLaunchTemplate", "CreateFunction", "CreateFunction20150331", "UpdateFunctionCode",
                 "UpdateFunctionCode20150331v2", "UpdateFunctionConfiguration",
                 "UpdateFunctionConfiguration20150331v2", "Invoke", "CreateCluster", "RunTask", "CreateService",
                 "CreateNotebookInstance", "CreateTrainingJob", "CreateStack", "CreateComputeEnvironment",
                 "SubmitJob", "CreateAutoScalingGroup", "SendCommand", "StartSession"})),
    Activity(DEFENSE_EVASION, "defence evasion", tactics=("TA0005",),
             techniques=dict.fromkeys(("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors",
                                       "DeleteFlowLogs"), "T1562.008"),
             events=frozenset({
                 "StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "PutInsightSelectors",
                 "DeleteFlowLogs", "DeleteDetector", "UpdateDetector", "DisassociateFromMasterAccount",
                 "DeleteMembers", "StopMonitoringMembers", "DisableSecurityHub", "BatchDisableStandards",
                 "StopConfigurationRecorder", "DeleteConfigurationRecorder", "DeleteConfigRule",
                 "DeleteDeliveryChannel", "DeleteLogGroup", "DeleteLogStream", "PutRetentionPolicy",
                 "DeleteBucketLogging", "PutBucketLogging", "LeaveOrganization", "DeleteAccessAnalyzer",
                 "UpdateAccountPasswordPolicy", "DeleteAlarms", "DisableAlarmActions", "DeleteEventBus",
                 "DisableRule", "DeleteRule"})),
    Activity(OTHER_ACTIVITY, "other"),
)
#: Calls of no listed category that read (discovery): the recon lane. Not `READ_PREFIXES`: Generate*
#: (GenerateCredentialReport) is discovery here, and BatchGet*/Scan outside the lists stay "other".
RECON_PREFIXES = ("Get", "List", "Describe", "Lookup", "Search", "Head", "Check", "Simulate", "Generate")
#: EventName → category, for the listed calls (a call is in one category only).
_ACTIVITY_OF: Mapping[str, str] = {name: activity.key for activity in ACTIVITIES for name in activity.events}


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


def data_access_calls() -> list[str]:
    """The data kinds as `queries/data_access_events.sql` binds them: `eventsource:EventName`, and
    `eventsource:EventName:attribute` for a call that reads data for one attribute only."""
    out = []
    for (service, name), _kind in sorted(DATA_CALLS.items()):
        source = f"{service}.amazonaws.com:{name}"
        wanted = DATA_ATTRIBUTE.get((service, name))
        out.append(f"{source}:{wanted}" if wanted else source)
    return out


def category_of(event: Event) -> str:
    """The activity category of one call (`ACTIVITIES`): its listed category, else data_access for an
    S3 object call, recon for another read, other for the rest."""
    name = str(event.get("event_name") or "")
    listed = _ACTIVITY_OF.get(name)
    if listed is not None:
        return listed
    if str(event.get("event_source") or "") == "s3.amazonaws.com" and "Object" in name:
        return DATA_ACCESS
    if name.startswith(RECON_PREFIXES):
        return RECON
    return OTHER_ACTIVITY


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
