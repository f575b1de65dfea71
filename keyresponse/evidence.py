"""The evidence store: what a principal looked like before we touched it, and a chained SHA-256 manifest.

Evidence goes to an S3 bucket with Object Lock when `settings.evidence_bucket` is set (the
bucket's default retention locks every object version; overwriting `manifest.json` or the
ledger copy adds a version, the old one stays locked), else to a local folder
`<settings.home>/incidents/<incident_id>/evidence/`.

    store = open_store(incident_id, s3=aws.client("s3"))
    store.put_json("principal-user-alice.json", snapshot_user(iam, "alice"))
    verify_manifest(store)       # raises VerificationFailed on a missing, altered or re-hashed object

**The manifest is a hash chain.** `manifest.json` lists every object stored, one entry per `put`
(an object stored again, like the ledger copy, gets a new entry; its last entry is the current
one), with its SHA-256, size and, in S3, the version id the put created. Each entry carries the
hash of the entry before it (`prev`) and its own hash over its fields and `prev` (`chain`); the
first entry's `prev` is derived from the incident id. Editing an entry (re-hashing an edited file
into the manifest) changes its hash, so the next entry no longer chains to it.

**The head is kept elsewhere.** The last entry's hash, the chain's head, is recorded after every
put in `<home>/incidents/<id>/manifest-head.jsonl` beside the ledger (append-only, fsynced:
`keyresponse/ledger.py`), and the post-incident flow publishes it in the Prefect artifact
`evidence-<id>` (`keyresponse/report/artifacts.py` `publish_evidence_head`). A manifest rewritten whole
(every hash recomputed), rolled back to an older version, or cut short disagrees with the recorded
head; `keyresponse verify-evidence --head HASH` (or `--prefect`) checks it against the published
one, which lives outside both the bucket and the ledger folder (an intruder who can write the
local home can rewrite the record too; not the Prefect server's copy).

**S3 versions are pinned.** In a versioned bucket (Object Lock buckets always are), each entry
names the version its put created, and verification reads every pinned version (earlier copies
of the ledger too) and checks that the current version of each object is still the one its last
entry pins: a newer version put over an object (an older copy swapped back in, say) or a delete
marker is named, even when its bytes match. A local folder keeps only the current file of each
name, so only that one is re-hashed there; earlier entries are checked through the chain.

Size: the store and its chained manifest are one integrity argument (write, chain, pin versions, verify); kept in one file so it can be read whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from keyresponse.errors import AwsCallError, InputError, VerificationFailed
from keyresponse.ledger import Ledger, LedgerCorrupt, utc_now, validate_incident_id
from keyresponse.settings import Settings, get_settings

if TYPE_CHECKING:  # boto3-stubs: a development dependency
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_iam.type_defs import LoginProfileTypeDef
    from mypy_boto3_s3 import S3Client

MANIFEST = "manifest.json"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._@+=-]+")
#: The fields an entry's chain hash covers (fixed: a field added later must not change old hashes).
CHAINED_FIELDS: tuple[str, ...] = ("seq", "prev", "name", "sha256", "size", "stored_at", "uri", "version_id")


def safe_name(name: str) -> str:
    """An object name made only of characters that are safe in a path and an S3 key."""
    return _SAFE_NAME.sub("_", name).strip("._") or "item"


def genesis(incident_id: str) -> str:
    """The `prev` of an incident's first manifest entry: a chain cannot be moved to another incident."""
    return hashlib.sha256(f"keyresponse evidence chain of {incident_id}".encode()).hexdigest()


class EvidenceItem(BaseModel):
    """One `put`: an object, its SHA-256 and (in a versioned bucket) the version it created, chained."""

    name: str
    sha256: str
    size: int
    stored_at: str
    uri: str
    #: the S3 version the put created; None in a folder or an unversioned bucket
    version_id: str | None = None
    #: the entry's number in the chain (0 first)
    seq: int | None = None
    #: the chain hash of the entry before (for the first: `genesis(incident_id)`)
    prev: str | None = None
    #: SHA-256 over `CHAINED_FIELDS`; None in a manifest written before the chain
    chain: str | None = None

    def link_hash(self) -> str:
        """What `chain` must be: SHA-256 of the chained fields as canonical JSON."""
        fields = {name: getattr(self, name) for name in CHAINED_FIELDS}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Manifest(BaseModel):
    incident_id: str
    #: every put, oldest first (an object stored again has several entries; its last is current)
    items: list[EvidenceItem] = []

    @property
    def head(self) -> str | None:
        """The chain's head: the last entry's hash (None for an empty or unchained manifest)."""
        return self.items[-1].chain if self.items else None

    def current(self) -> list[EvidenceItem]:
        """The last entry of each object, in the order of those entries."""
        last = {item.name: index for index, item in enumerate(self.items)}
        return [item for index, item in enumerate(self.items) if last[item.name] == index]

    def item(self, name: str) -> EvidenceItem | None:
        """The current (last) entry of `name`."""
        return next((item for item in reversed(self.items) if item.name == name), None)


def _json_bytes(payload: object) -> bytes:
    return (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode()


class EvidenceStore(ABC):
    """Where one incident's evidence lives. `put` chains every object into the manifest and records
    the new head in the ledger folder (`home/incidents/<id>/`)."""

    def __init__(self, incident_id: str, home: Path | None = None) -> None:
        self.incident_id = validate_incident_id(incident_id)
        self.ledger = Ledger(incident_id, home or get_settings().home)

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the evidence is, for a human (a folder or an s3:// prefix)."""

    @abstractmethod
    def _write(self, name: str, data: bytes) -> tuple[str, str | None]:
        """Store `data` under `name`; return its URI and the version created (None when unversioned)."""

    @abstractmethod
    def _read(self, name: str) -> bytes | None:
        """The bytes stored under `name` now, or None when there is no such object."""

    def _read_version(self, name: str, version_id: str) -> bytes | None:
        """The bytes of one version of `name` (stores that keep versions override this)."""
        raise NotImplementedError(f"{self.location} keeps no versions")

    def current_version(self, name: str) -> str | None:
        """The version id `name` reads as now; None when it is gone (or hidden by a delete marker)."""
        raise NotImplementedError(f"{self.location} keeps no versions")

    def manifest(self) -> Manifest:
        raw = self._read(MANIFEST)
        if raw is None:
            return Manifest(incident_id=self.incident_id)
        return Manifest.model_validate_json(raw)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One put at a time per incident on this host (threads and processes): a manifest is read,
        extended and written back, and two puts at once would fork its chain."""
        self.ledger.folder.mkdir(parents=True, exist_ok=True)
        with open(self.ledger.folder / "evidence.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def put(self, name: str, data: bytes) -> EvidenceItem:
        """Store `data`, chain it into the manifest (an object stored again gets a new entry) and
        record the new head in the ledger folder."""
        name = safe_name(name)
        if name == MANIFEST:
            raise InputError(f"{MANIFEST} is the store's own manifest, not an evidence object")
        with self._locked():
            uri, version_id = self._write(name, data)
            manifest = self.manifest()
            item = EvidenceItem(name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                stored_at=utc_now(), uri=uri, version_id=version_id, seq=len(manifest.items),
                                prev=manifest.head or genesis(self.incident_id))
            item.chain = item.link_hash()
            manifest.items.append(item)
            self._write(MANIFEST, manifest.model_dump_json(indent=2).encode())
            self.ledger.record_manifest_head(item.seq or 0, item.chain, name)
        return item

    def put_json(self, name: str, payload: object) -> EvidenceItem:
        return self.put(name, _json_bytes(payload))

    def get(self, name: str) -> bytes | None:
        return self._read(safe_name(name))

    def read_item(self, item: EvidenceItem) -> bytes | None:
        """The bytes `item` names: its pinned version when it has one, else the object as it is now."""
        return self._read(item.name) if item.version_id is None else self._read_version(item.name, item.version_id)


class LocalEvidenceStore(EvidenceStore):
    """Evidence in `<home>/incidents/<incident_id>/evidence/` (no bucket configured)."""

    def __init__(self, incident_id: str, home: Path) -> None:
        super().__init__(incident_id, home)
        self.folder = home / "incidents" / incident_id / "evidence"

    @property
    def location(self) -> str:
        return str(self.folder)

    def _write(self, name: str, data: bytes) -> tuple[str, str | None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path.resolve().as_uri(), None

    def _read(self, name: str) -> bytes | None:
        path = self.folder / name
        return path.read_bytes() if path.exists() else None


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchVersion", "404")


class S3EvidenceStore(EvidenceStore):
    """Evidence in `s3://<bucket>/incidents/<incident_id>/evidence/`, locked by the bucket's Object Lock."""

    def __init__(self, incident_id: str, bucket: str, s3: S3Client, home: Path | None = None) -> None:
        super().__init__(incident_id, home)
        self.bucket = bucket
        self.prefix = f"incidents/{incident_id}/evidence/"
        self._s3 = s3

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _write(self, name: str, data: bytes) -> tuple[str, str | None]:
        key = self.prefix + name
        # An explicit checksum: S3 requires one on PutObject to an Object Lock bucket.
        response = self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")
        return f"s3://{self.bucket}/{key}", response.get("VersionId")

    def _get(self, name: str, version_id: str | None = None) -> bytes | None:
        key = self.prefix + name
        try:
            response = (self._s3.get_object(Bucket=self.bucket, Key=key) if version_id is None
                        else self._s3.get_object(Bucket=self.bucket, Key=key, VersionId=version_id))
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise AwsCallError(f"reading evidence s3://{self.bucket}/{self.prefix}{name}: {exc}") from exc
        return bytes(response["Body"].read())

    def _read(self, name: str) -> bytes | None:
        return self._get(name)

    def _read_version(self, name: str, version_id: str) -> bytes | None:
        return self._get(name, version_id)

    def current_version(self, name: str) -> str | None:
        try:
            response = self._s3.head_object(Bucket=self.bucket, Key=self.prefix + name)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise AwsCallError(f"reading evidence s3://{self.bucket}/{self.prefix}{name}: {exc}") from exc
        return str(response.get("VersionId") or "null")


def open_store(incident_id: str, *, s3: S3Client | None = None, settings: Settings | None = None) -> EvidenceStore:
    """The store `settings` name: the Object Lock bucket when set (then `s3` is required), else a folder."""
    settings = settings or get_settings()
    if settings.evidence_bucket:
        if s3 is None:
            from keyresponse import aws

            s3 = aws.client("s3")
        return S3EvidenceStore(incident_id, settings.evidence_bucket, s3, settings.home)
    return LocalEvidenceStore(incident_id, settings.home)


# -- verification ------------------------------------------------------------------------------


@dataclass
class Verification:
    """What `verify_evidence` checked, once everything held."""

    manifest: Manifest
    #: the current entry of each object (what the manifest lists now)
    items: list[EvidenceItem]
    #: the chain's head (None for an empty or unchained manifest)
    head: str | None
    #: how many stored versions were re-read and re-hashed (pinned S3 versions, or current files)
    objects_checked: int
    #: what the head was checked against, in words
    anchors: list[str] = field(default_factory=list)
    #: what holds but proves less than it should (unchained entries allowed), in words
    warnings: list[str] = field(default_factory=list)


def _short(digest: str | None) -> str:
    return f"{digest[:12]}…" if digest else "none"


def _check_chain(manifest: Manifest, problems: list[str], warnings: list[str], allow_unchained: bool) -> None:
    expected = genesis(manifest.incident_id)
    unchained: list[str] = []
    for index, item in enumerate(manifest.items):
        if item.chain is None:
            unchained.append(f"{index} ({item.name})")
            expected = genesis(manifest.incident_id)
            continue
        where = f"manifest entry {index} ({item.name})"
        if item.seq != index:
            problems.append(f"{where} is numbered {item.seq}: entries were removed, added or reordered")
        if item.prev != expected:
            problems.append(f"{where} does not chain to the entry before it (prev {_short(item.prev)}, "
                            f"expected {_short(expected)}): an earlier entry was edited, removed or inserted")
        if item.link_hash() != item.chain:
            problems.append(f"{where} was edited after it was chained: its fields hash to "
                            f"{_short(item.link_hash())}, not to its chain hash {_short(item.chain)}")
        expected = item.chain
    if unchained:
        message = (f"manifest entries {', '.join(unchained)} carry no chain hash (stored before the manifest "
                   "was chained, or rewritten without it): their SHA-256 alone cannot show they were not re-hashed")
        (warnings if allow_unchained else problems).append(message)


def _check_objects(store: EvidenceStore, manifest: Manifest, problems: list[str]) -> int:
    checked = 0
    current = {id(item) for item in manifest.current()}
    for index, item in enumerate(manifest.items):
        if item.version_id is None and id(item) not in current:
            continue  # a folder or an unversioned bucket keeps only the current bytes of a name
        what = item.name if item.version_id is None else f"{item.name} version {item.version_id} (entry {index})"
        data = store.read_item(item)
        checked += 1
        if data is None:
            problems.append(f"{what} is missing")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != item.sha256:
            problems.append(f"{what} does not match its SHA-256 in the manifest "
                            f"(manifest {_short(item.sha256)}, stored {_short(digest)})")
    for item in manifest.current():
        if item.version_id is None:
            continue
        now = store.current_version(item.name)
        if now is None:
            problems.append(f"{item.name} was deleted after the manifest pinned version {item.version_id} "
                            "(a delete marker hides it; the pinned version was checked)")
        elif now != item.version_id:
            problems.append(f"{item.name}: version {now} was put over version {item.version_id}, the one "
                            "the manifest pins (an object replaced outside keyresponse)")
    return checked


def _check_anchors(store: EvidenceStore, manifest: Manifest, head: str | None, problems: list[str],
                   anchors: list[str], warnings: list[str], allow_unchained: bool) -> None:
    chain = [item.chain for item in manifest.items]
    path = store.ledger.manifest_heads
    try:
        recorded = store.ledger.manifest_heads_recorded()
    except LedgerCorrupt as exc:
        problems.append(str(exc))
        recorded = {}
    for seq, value in sorted(recorded.items()):
        if seq >= len(chain):
            problems.append(f"{path} records a head at entry {seq} but the manifest has {len(chain)} entries: "
                            "entries were removed or an older manifest was put back")
            break
        if chain[seq] != value:
            problems.append(f"manifest entry {seq} ({manifest.items[seq].name}) is not the one recorded when it "
                            f"was stored (recorded head {_short(value)}, manifest {_short(chain[seq])}): "
                            "the manifest was rewritten")
    if recorded and max(recorded) < len(chain) - 1:
        extra = ", ".join(item.name for item in manifest.items[max(recorded) + 1:])
        problems.append(f"manifest entries {max(recorded) + 1}..{len(chain) - 1} ({extra}) are not recorded in "
                        f"{path}: they were added outside keyresponse")
    if recorded:
        anchors.append(f"the heads recorded in {path}")
    if head is not None:
        head = head.strip().lower()
        if head not in chain:
            problems.append(f"the published head {_short(head)} is not in the manifest's chain: the manifest "
                            "was rewritten at or before the entry it was published after")
        else:
            later = len(chain) - 1 - chain.index(head)
            anchors.append(f"the published head {_short(head)} (entry {chain.index(head)}; {later} stored since)")
    if anchors or not manifest.items or problems:
        return
    if allow_unchained and manifest.head is None:
        warnings.append(f"no chain head is recorded at {path}: nothing shows the manifest was not rewritten")
    else:
        problems.append(f"no chain head is recorded at {path} and none was given (--head, from the Prefect "
                        f"artifact evidence-<incident>): the manifest cannot be told from a rewritten one")


def verify_evidence(store: EvidenceStore, *, head: str | None = None, allow_unchained: bool = False) -> Verification:
    """Check the chain, every object (each pinned S3 version) and the head against the ledger folder's
    record and, when given, the published `head`. Raises `VerificationFailed` naming every problem."""
    manifest = store.manifest()
    problems: list[str] = []
    warnings: list[str] = []
    anchors: list[str] = []
    _check_chain(manifest, problems, warnings, allow_unchained)
    checked = _check_objects(store, manifest, problems)
    _check_anchors(store, manifest, head, problems, anchors, warnings, allow_unchained)
    if problems:
        raise VerificationFailed(f"evidence at {store.location} fails verification: " + "; ".join(problems))
    return Verification(manifest=manifest, items=manifest.current(), head=manifest.head, objects_checked=checked,
                        anchors=anchors, warnings=warnings)


def verify_manifest(store: EvidenceStore, *, head: str | None = None) -> list[EvidenceItem]:
    """`verify_evidence`, returning the current entry of each object."""
    return verify_evidence(store, head=head).items


def read_verified(store: EvidenceStore, name: str, *, head: str | None = None) -> bytes | None:
    """`name`'s bytes once the whole store verifies, re-hashed as read (its pinned version in S3);
    None when the store holds no such object. Raises `VerificationFailed`."""
    name = safe_name(name)
    if store.get(MANIFEST) is None:
        if store.get(name) is not None:
            raise VerificationFailed(f"{name} at {store.location} is stored without a manifest: it cannot be verified")
        return None
    verification = verify_evidence(store, head=head)
    item = verification.manifest.item(name)
    if item is None:
        if store.get(name) is not None:
            raise VerificationFailed(f"{name} at {store.location} is not in the evidence manifest")
        return None
    data = store.read_item(item)
    digest = hashlib.sha256(data or b"").hexdigest()
    if data is None or digest != item.sha256:
        raise VerificationFailed(f"{name} at {store.location} changed while it was verified "
                                 f"(manifest {_short(item.sha256)}, read {_short(digest)})")
    return data


# -- principal snapshots (read-only IAM calls) -------------------------------------------------


def _no_such_entity(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "NoSuchEntity"


def _paginate(iam: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    items: list[Any] = []
    for page in iam.get_paginator(operation).paginate(**kwargs):
        items.extend(page[key])
    return items


def snapshot_user(iam: IAMClient, user_name: str) -> dict[str, object]:
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
        profile: LoginProfileTypeDef | None = iam.get_login_profile(UserName=user_name)["LoginProfile"]
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


def snapshot_role(iam: IAMClient, role_name: str) -> dict[str, object]:
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
    "iam:ListAttachedRolePolicies", "iam:ListRoleTags", "s3:PutObject", "s3:GetObject", "s3:GetObjectVersion",
)
