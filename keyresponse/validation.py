"""Validation: is the key ours, whose is it, is it active, how old, when last used, quarantined?

The playbook's first analysis step. Everything here is read-only and fast: every call has a short
timeout and few retries, and a failure becomes a `gaps` entry instead of an exception, because an
investigation must answer from the logs even when AWS cannot be asked.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import JsonValue

from keyresponse.keys import is_temporary, validate_access_key_id
from keyresponse.settings import get_settings

if TYPE_CHECKING:  # boto3-stubs: a development dependency
    import boto3
    from mypy_boto3_iam.type_defs import AccessKeyMetadataTypeDef

QUARANTINE_PREFIX = "AWSCompromisedKeyQuarantine"


def credential_source(session: boto3.Session | None = None) -> str | None:
    """How boto3 finds credentials here (`env`, `assume-role`, `container-role`, `iam-role` for an EC2
    instance role, `sso`…), or None when it finds none.

    Every source boto3 supports counts: an EC2 instance role or an ECS/EKS task role has no
    environment variable or file to show for itself (the instance metadata service is asked, with
    botocore's own short timeout, 1 s and one attempt by default: `AWS_METADATA_SERVICE_TIMEOUT`)."""
    from keyresponse import aws

    try:
        credentials = (session or aws.session()).get_credentials()
    except (BotoCoreError, ClientError):
        credentials = None
    if credentials is not None:
        return str(getattr(credentials, "method", None) or "unknown")
    return "endpoint" if os.environ.get("AWS_ENDPOINT_URL") else None


def aws_reachable(session: boto3.Session | None = None) -> bool:
    """True when boto3 finds credentials (any source, instance and task roles included) or an endpoint."""
    return credential_source(session) is not None


@dataclass
class KeyFacts:
    """What AWS itself says about the key."""

    access_key_id: str
    account_id: str | None = None
    responder_account_id: str | None = None
    responder_arn: str | None = None
    owner: str | None = None
    owner_arn: str | None = None
    status: str | None = None
    created_at: str | None = None
    age_days: int | None = None
    last_used_at: str | None = None
    last_used_service: str | None = None
    last_used_region: str | None = None
    quarantine_policies: list[str] = field(default_factory=list)
    is_ours: bool | None = None
    gaps: list[str] = field(default_factory=list)

    @property
    def not_ours(self) -> bool:
        """The key belongs to an account outside scope: the response stops here."""
        return self.is_ours is False

    def to_json(self) -> dict[str, JsonValue]:
        return asdict(self)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def validate_key(access_key_id: str, *, accounts_in_scope: list[str] | None = None,
                 session: boto3.Session | None = None, now: datetime | None = None) -> KeyFacts:
    """Ask STS and IAM about the key. Never raises for AWS failures: they land in `gaps`."""
    from keyresponse import aws

    key = validate_access_key_id(access_key_id)
    facts = KeyFacts(key)
    sess = session or aws.session()
    if not aws_reachable(sess):
        facts.gaps.append("no AWS credentials found (environment, config and SSO profiles, web identity, "
                          "container and instance roles were looked at): the key was not validated against IAM; "
                          "owner, status and age come from the logs only")
        return facts
    now = now or datetime.now(UTC)
    try:
        # An instance or task role may come with no region configured at all: the home region then.
        region = sess.region_name or get_settings().region
        sts = aws.client("sts", boto_session=sess, region=region, config=aws.QUICK)
        me = sts.get_caller_identity()
        facts.responder_account_id, facts.responder_arn = me["Account"], me["Arn"]
        facts.account_id = sts.get_access_key_info(AccessKeyId=key)["Account"]
    except (ClientError, BotoCoreError) as exc:
        facts.gaps.append(f"could not ask STS who owns the key: {exc}")
        return facts
    scope = set(accounts_in_scope or []) | {facts.responder_account_id}
    facts.is_ours = facts.account_id in scope
    if not facts.is_ours:
        return facts
    if is_temporary(key):
        facts.gaps.append("temporary (ASIA) credential: IAM keeps no record of it; owner comes from the logs")
        return facts
    iam = aws.client("iam", boto_session=sess, region=region, config=aws.QUICK)
    try:
        used = iam.get_access_key_last_used(AccessKeyId=key)
        facts.owner = used.get("UserName")
        last = used.get("AccessKeyLastUsed", {})
        facts.last_used_at = _iso(last.get("LastUsedDate"))
        facts.last_used_service = None if last.get("ServiceName") == "N/A" else last.get("ServiceName")
        facts.last_used_region = None if last.get("Region") == "N/A" else last.get("Region")
        if facts.owner:
            user = iam.get_user(UserName=facts.owner)["User"]
            facts.owner_arn = user["Arn"]
            for meta in iam.list_access_keys(UserName=facts.owner)["AccessKeyMetadata"]:
                if meta["AccessKeyId"] == key:
                    facts.status = meta["Status"]
                    facts.created_at = _iso(meta["CreateDate"])
                    facts.age_days = (now - meta["CreateDate"].astimezone(UTC)).days
            attached = iam.list_attached_user_policies(UserName=facts.owner)["AttachedPolicies"]
            facts.quarantine_policies = [p["PolicyName"] for p in attached
                                         if p["PolicyName"].startswith(QUARANTINE_PREFIX)]
    except (ClientError, BotoCoreError) as exc:
        facts.gaps.append(f"could not read the key's IAM record: {exc}")
    return facts


def key_of_user(principal: str | None) -> str:
    """The access key an alert about a user (not a key) most likely means: the user's active key used
    most recently. AWS's quarantine-policy attach event names the user only."""
    from keyresponse import aws
    from keyresponse.errors import InputError

    if not principal:
        raise InputError("the alert names neither an access key nor a user")
    user = principal.rsplit("/", 1)[-1]
    iam = aws.client("iam", config=aws.QUICK)
    try:
        keys = [k for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"] if k["Status"] == "Active"]
    except ClientError as exc:
        raise InputError(f"cannot list the access keys of {user}: {exc}") from exc
    if not keys:
        raise InputError(f"user {user} has no active access key to respond to")

    def last_used(meta: AccessKeyMetadataTypeDef) -> datetime:
        used = iam.get_access_key_last_used(AccessKeyId=meta["AccessKeyId"])["AccessKeyLastUsed"]
        return used.get("LastUsedDate") or meta["CreateDate"]

    return str(max(keys, key=last_used)["AccessKeyId"])
