"""Evidence: principal snapshots, a SHA-256 manifest, local folder or the Object Lock bucket."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyresponse.errors import VerificationFailed
from keyresponse.evidence import (
    LocalEvidenceStore,
    S3EvidenceStore,
    genesis,
    open_store,
    snapshot_role,
    snapshot_user,
    verify_evidence,
    verify_manifest,
)
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import Settings


def test_snapshots_everything_a_user_has_without_secrets(sandbox: MotoSandbox, unique_name: str) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name, Tags=[{"Key": "team", "Value": "platform"}])
    iam.create_group(GroupName=unique_name)
    iam.add_user_to_group(GroupName=unique_name, UserName=unique_name)
    iam.create_login_profile(UserName=unique_name, Password="Snapshot-Passw0rd!")
    iam.create_access_key(UserName=unique_name)
    iam.put_user_policy(UserName=unique_name, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    state = snapshot_user(iam, unique_name)
    assert state["exists"] and state["groups"] == [unique_name] and state["login_profile"] is not None
    assert state["tags"] == [{"Key": "team", "Value": "platform"}] and list(state["inline_policies"]) == ["p"]
    assert len(state["access_keys"]) == 1 and "SecretAccessKey" not in json.dumps(state, default=str)
    assert snapshot_user(iam, "nobody-here") == {"kind": "user", "name": "nobody-here", "exists": False}
    iam.create_role(RoleName=unique_name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    assert snapshot_role(iam, unique_name)["trust_policy"]["Statement"][0]["Principal"]


def test_detects_a_changed_file_when_verifying_the_local_manifest(tmp_path: Path) -> None:
    store = open_store("ir-local", settings=Settings(home=tmp_path, evidence_bucket=None))
    assert isinstance(store, LocalEvidenceStore)
    store.put_json("a.json", {"x": 1})
    store.put("ledger.jsonl", b"one\n")
    store.put("ledger.jsonl", b"one\ntwo\n")
    assert [i.name for i in verify_manifest(store)] == ["a.json", "ledger.jsonl"]
    (store.folder / "a.json").write_text('{"x": 2}')
    with pytest.raises(VerificationFailed, match=r"a\.json does not match"):
        verify_manifest(store)


def test_locks_objects_when_stored_in_the_evidence_bucket(sandbox: MotoSandbox, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    bucket = "evidence-test-locked"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    store = open_store("ir-s3", s3=s3, settings=Settings(home=tmp_path, evidence_bucket=bucket))
    item = store.put_json("investigation.json", {"access_key_id": "AKIA"})
    assert item.uri.startswith(f"s3://{bucket}/incidents/ir-s3/evidence/")
    head = s3.head_object(Bucket=bucket, Key="incidents/ir-s3/evidence/investigation.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert verify_manifest(store)[0].sha256 == item.sha256


# -- the chained manifest (finding M3: evidence re-hashed, rolled back or swapped after the fact) ---------


def _local_store(tmp_path: Path, incident: str = "ir-chain") -> LocalEvidenceStore:
    store = open_store(incident, settings=Settings(home=tmp_path, evidence_bucket=None))
    assert isinstance(store, LocalEvidenceStore)
    store.put_json("before-user-alice.json", {"access_keys": [{"AccessKeyId": "AKIA1", "Status": "Active"}]})
    store.put_json("investigation.json", {"verdict": "malicious"})
    store.put("ledger.jsonl", b'{"action": "deactivate_access_key"}\n')
    store.put_json("incident.json", {"status": "recovered"})
    return store


def _rehash(store: LocalEvidenceStore, name: str, data: bytes) -> None:
    """What an intruder with write access to the evidence does: change a file, put its new SHA-256 in the manifest."""
    (store.folder / name).write_bytes(data)
    manifest = json.loads((store.folder / "manifest.json").read_text())
    for item in manifest["items"]:
        if item["name"] == name:
            item["sha256"], item["size"] = hashlib.sha256(data).hexdigest(), len(data)
    (store.folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_a_file_edited_and_rehashed_into_the_manifest_breaks_the_chain(tmp_path: Path) -> None:
    store = _local_store(tmp_path)
    assert [i.name for i in verify_manifest(store)] == [
        "before-user-alice.json", "investigation.json", "ledger.jsonl", "incident.json"]
    _rehash(store, "investigation.json", b'{"verdict": "benign"}\n')
    with pytest.raises(VerificationFailed) as failed:
        verify_manifest(store)
    assert "manifest entry 1 (investigation.json) was edited after it was chained" in str(failed.value)
    assert "investigation.json does not match" not in str(failed.value)  # the bytes match the re-hash


def test_a_manifest_rechained_whole_disagrees_with_the_recorded_and_the_published_head(tmp_path: Path) -> None:
    """The intruder re-hashes the file and recomputes every chain hash after it: the chain holds, but its
    head is not the one recorded beside the ledger; with that record rewritten too, not the published one."""
    store = _local_store(tmp_path)
    published = store.manifest().head
    assert published is not None and verify_evidence(store, head=published).anchors
    _rehash(store, "before-user-alice.json", b'{"access_keys": [{"AccessKeyId": "AKIA1", "Status": "Inactive"}]}\n')
    manifest = store.manifest()
    prev = genesis(store.incident_id)
    for item in manifest.items:
        item.prev = prev
        item.chain = prev = item.link_hash()
    (store.folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    with pytest.raises(VerificationFailed, match=r"manifest entry 0 \(before-user-alice.json\) is not the one "
                                                 r"recorded when it was stored .*the manifest was rewritten"):
        verify_manifest(store)

    store.ledger.manifest_heads.unlink()  # the record goes too: nothing to compare with is no pass
    with pytest.raises(VerificationFailed, match="no chain head is recorded"):
        verify_manifest(store)
    for item in manifest.items:  # the record rewritten to match: the head published in Prefect still differs
        store.ledger.record_manifest_head(item.seq or 0, item.chain or "", item.name)
    assert verify_manifest(store)
    with pytest.raises(VerificationFailed, match=r"the published head .* is not in the manifest's chain"):
        verify_manifest(store, head=published)


def test_an_entry_removed_or_added_by_hand_is_named(tmp_path: Path) -> None:
    store = _local_store(tmp_path)
    manifest = store.manifest()
    manifest.items.pop()  # incident.json's entry dropped: the chain itself still holds
    (store.folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    with pytest.raises(VerificationFailed, match="records a head at entry 3 but the manifest has 3 entries"):
        verify_manifest(store)


def _locked_store(tmp_path: Path, bucket: str, incident: str) -> tuple[Any, S3EvidenceStore]:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)  # Object Lock: versioned
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    store = open_store(incident, s3=s3, settings=Settings(home=tmp_path, evidence_bucket=bucket))
    assert isinstance(store, S3EvidenceStore)
    return s3, store


def test_pins_each_s3_version_and_checks_every_one(sandbox: MotoSandbox, tmp_path: Path) -> None:
    s3, store = _locked_store(tmp_path, "evidence-test-pinned", "ir-s3-pinned")
    first = store.put("ledger.jsonl", b"one\n")
    store.put_json("investigation.json", {"verdict": "malicious"})
    second = store.put("ledger.jsonl", b"one\ntwo\n")
    assert first.version_id and second.version_id and first.version_id != second.version_id
    key = f"{store.prefix}ledger.jsonl"
    assert s3.get_object(Bucket=store.bucket, Key=key, VersionId=first.version_id)["Body"].read() == b"one\n"
    result = verify_evidence(store)
    assert result.objects_checked == 3  # both ledger versions and the investigation
    assert [(i.name, i.version_id) for i in result.items] == [
        ("investigation.json", store.manifest().items[1].version_id), ("ledger.jsonl", second.version_id)]


def test_an_older_s3_version_put_back_over_the_evidence_is_detected(sandbox: MotoSandbox, tmp_path: Path) -> None:
    """The ledger copy gains a line; an intruder with s3:PutObject puts the older ledger and the older
    manifest back as new versions (Object Lock keeps the old ones; it cannot stop new ones). Every hash
    in that older manifest matches what is current now; the pinned versions and the recorded head do not."""
    s3, store = _locked_store(tmp_path, "evidence-test-rollback", "ir-s3-rollback")
    store.put_json("investigation.json", {"verdict": "malicious"})
    pinned = store.put("ledger.jsonl", b'{"action": "deactivate_access_key"}\n')
    old_manifest = s3.get_object(Bucket=store.bucket, Key=f"{store.prefix}manifest.json")["Body"].read()
    store.put("ledger.jsonl", b'{"action": "deactivate_access_key"}\n{"action": "delete_login_profile"}\n')
    assert verify_manifest(store)

    for name, body in (("ledger.jsonl", b'{"action": "deactivate_access_key"}\n'), ("manifest.json", old_manifest)):
        s3.put_object(Bucket=store.bucket, Key=store.prefix + name, Body=body, ChecksumAlgorithm="SHA256")
    assert store.manifest().item("ledger.jsonl") == pinned  # the rolled-back manifest agrees with the bytes
    with pytest.raises(VerificationFailed) as failed:
        verify_manifest(store)
    message = str(failed.value)
    assert "ledger.jsonl: version " in message and f"was put over version {pinned.version_id}" in message
    assert "records a head at entry 2 but the manifest has 2 entries" in message
