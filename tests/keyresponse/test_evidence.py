"""Evidence: principal snapshots, a SHA-256 manifest, local folder or the Object Lock bucket."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from keyresponse.errors import VerificationFailed
from keyresponse.evidence import LocalEvidenceStore, open_store, snapshot_role, snapshot_user, verify_manifest
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
