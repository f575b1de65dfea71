"""The evidence store: what a principal looked like before we touched it, and a SHA-256 manifest.

Evidence goes to an S3 bucket with Object Lock when `settings.evidence_bucket` is set (the
bucket's default retention locks every object version; overwriting `manifest.json` or the
ledger copy adds a version, the old one stays locked), else to a local folder
`<settings.home>/incidents/<incident_id>/evidence/`.

    store = open_store(incident_id, s3=aws.client("s3"))
    store.put_json("principal-user-alice.json", snapshot_user(iam, "alice"))
    verify_manifest(store)       # raises VerificationFailed on a missing or altered object

Every object is listed in `manifest.json` with its SHA-256 and size; `verify_manifest` re-reads
each one and compares.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from keyresponse.errors import AwsCallError, VerificationFailed
from keyresponse.ledger import utc_now, validate_incident_id
from keyresponse.settings import Settings, get_settings

MANIFEST = "manifest.json"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._@+=-]+")


def safe_name(name: str) -> str:
    """An object name made only of characters that are safe in a path and an S3 key."""
    return _SAFE_NAME.sub("_", name).strip("._") or "item"


class EvidenceItem(BaseModel):
    name: str
    sha256: str
    size: int
    stored_at: str
    uri: str


class Manifest(BaseModel):
    incident_id: str
    items: list[EvidenceItem] = []

    def item(self, name: str) -> EvidenceItem | None:
        return next((item for item in self.items if item.name == name), None)


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode()


class EvidenceStore(ABC):
    """Where one incident's evidence lives. `put` records every object in the manifest."""

    def __init__(self, incident_id: str) -> None:
        self.incident_id = validate_incident_id(incident_id)

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the evidence is, for a human (a folder or an s3:// prefix)."""

    @abstractmethod
    def _write(self, name: str, data: bytes) -> str:
        """Store `data` under `name`; return its URI."""

    @abstractmethod
    def _read(self, name: str) -> bytes | None:
        """The bytes stored under `name`, or None when there is no such object."""

    def manifest(self) -> Manifest:
        raw = self._read(MANIFEST)
        if raw is None:
            return Manifest(incident_id=self.incident_id)
        return Manifest.model_validate_json(raw)

    def put(self, name: str, data: bytes) -> EvidenceItem:
        """Store `data` and list it (by SHA-256) in the manifest; a same-named item is replaced."""
        name = safe_name(name)
        uri = self._write(name, data)
        item = EvidenceItem(name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                            stored_at=utc_now(), uri=uri)
        manifest = self.manifest()
        manifest.items = [i for i in manifest.items if i.name != name] + [item]
        self._write(MANIFEST, manifest.model_dump_json(indent=2).encode())
        return item

    def put_json(self, name: str, payload: Any) -> EvidenceItem:
        return self.put(name, _json_bytes(payload))

    def get(self, name: str) -> bytes | None:
        return self._read(safe_name(name))


class LocalEvidenceStore(EvidenceStore):
    """Evidence in `<home>/incidents/<incident_id>/evidence/` (no bucket configured)."""

    def __init__(self, incident_id: str, home: Path) -> None:
        super().__init__(incident_id)
        self.folder = home / "incidents" / incident_id / "evidence"

    @property
    def location(self) -> str:
        return str(self.folder)

    def _write(self, name: str, data: bytes) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path.resolve().as_uri()

    def _read(self, name: str) -> bytes | None:
        path = self.folder / name
        return path.read_bytes() if path.exists() else None


class S3EvidenceStore(EvidenceStore):
    """Evidence in `s3://<bucket>/incidents/<incident_id>/evidence/`, locked by the bucket's Object Lock."""

    def __init__(self, incident_id: str, bucket: str, s3: Any) -> None:
        super().__init__(incident_id)
        self.bucket = bucket
        self.prefix = f"incidents/{incident_id}/evidence/"
        self._s3 = s3

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _write(self, name: str, data: bytes) -> str:
        key = self.prefix + name
        # An explicit checksum: S3 requires one on PutObject to an Object Lock bucket.
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")
        return f"s3://{self.bucket}/{key}"

    def _read(self, name: str) -> bytes | None:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise AwsCallError(f"reading evidence s3://{self.bucket}/{self.prefix}{name}: {exc}") from exc
        return bytes(response["Body"].read())


def open_store(incident_id: str, *, s3: Any | None = None, settings: Settings | None = None) -> EvidenceStore:
    """The store `settings` name: the Object Lock bucket when set (then `s3` is required), else a folder."""
    settings = settings or get_settings()
    if settings.evidence_bucket:
        if s3 is None:
            from keyresponse import aws

            s3 = aws.client("s3")
        return S3EvidenceStore(incident_id, settings.evidence_bucket, s3)
    return LocalEvidenceStore(incident_id, settings.home)


def verify_manifest(store: EvidenceStore) -> list[EvidenceItem]:
    """Re-read every object the manifest lists and compare SHA-256; raise `VerificationFailed` on any mismatch."""
    manifest = store.manifest()
    problems: list[str] = []
    for item in manifest.items:
        data = store.get(item.name)
        if data is None:
            problems.append(f"{item.name} is missing")
        elif hashlib.sha256(data).hexdigest() != item.sha256:
            problems.append(f"{item.name} does not match its SHA-256 in the manifest")
    if problems:
        raise VerificationFailed(f"evidence at {store.location} fails verification: " + "; ".join(problems))
    return manifest.items


# -- principal snapshots (read-only IAM calls) -------------------------------------------------


def _no_such_entity(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "NoSuchEntity"


def _paginate(iam: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    items: list[Any] = []
    for page in iam.get_paginator(operation).paginate(**kwargs):
        items.extend(page[key])
    return items


def snapshot_user(iam: Any, user_name: str) -> dict[str, Any]:
    """Everything about an IAM user an eradication could change: policies, groups, keys, console, MFA, tags.

    Returns `{"exists": False}` for a user that does not exist. Never contains a secret.
    """
    try:
        user = iam.get_user(UserName=user_name)["User"]
    except ClientError as exc:
        if _no_such_entity(exc):
            return {"kind": "user", "name": user_name, "exists": False}
        raise
    inline = {
        name: iam.get_user_policy(UserName=user_name, PolicyName=name)["PolicyDocument"]
        for name in _paginate(iam, "list_user_policies", "PolicyNames", UserName=user_name)
    }
    try:
        profile: dict[str, Any] | None = iam.get_login_profile(UserName=user_name)["LoginProfile"]
    except ClientError as exc:
        if not _no_such_entity(exc):
            raise
        profile = None
    return {
        "kind": "user", "name": user_name, "exists": True, "arn": user["Arn"], "created_at": user["CreateDate"],
        "inline_policies": inline,
        "attached_policies": _paginate(iam, "list_attached_user_policies", "AttachedPolicies", UserName=user_name),
        "groups": [g["GroupName"] for g in _paginate(iam, "list_groups_for_user", "Groups", UserName=user_name)],
        "access_keys": _paginate(iam, "list_access_keys", "AccessKeyMetadata", UserName=user_name),
        "login_profile": profile,
        "mfa_devices": _paginate(iam, "list_mfa_devices", "MFADevices", UserName=user_name),
        "tags": iam.list_user_tags(UserName=user_name)["Tags"],
    }


def snapshot_role(iam: Any, role_name: str) -> dict[str, Any]:
    """An IAM role's trust policy, inline and attached policies and tags; `{"exists": False}` if absent."""
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except ClientError as exc:
        if _no_such_entity(exc):
            return {"kind": "role", "name": role_name, "exists": False}
        raise
    inline = {
        name: iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        for name in _paginate(iam, "list_role_policies", "PolicyNames", RoleName=role_name)
    }
    return {
        "kind": "role", "name": role_name, "exists": True, "arn": role["Arn"], "created_at": role["CreateDate"],
        "trust_policy": role["AssumeRolePolicyDocument"],
        "inline_policies": inline,
        "attached_policies": _paginate(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=role_name),
        "tags": iam.list_role_tags(RoleName=role_name)["Tags"],
    }


#: The read-only calls the snapshots and the store need; `keyresponse policy` includes them.
PERMISSIONS: tuple[str, ...] = (
    "iam:GetUser", "iam:ListUserPolicies", "iam:GetUserPolicy", "iam:ListAttachedUserPolicies",
    "iam:ListGroupsForUser", "iam:ListAccessKeys", "iam:GetLoginProfile", "iam:ListMFADevices",
    "iam:ListUserTags", "iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies", "iam:ListRoleTags", "s3:PutObject", "s3:GetObject",
)
