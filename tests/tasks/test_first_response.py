"""The receiver's first response snapshots the owner before it deactivates the key (review M3.4): the
`before-*` evidence shows the key Active, as it was, not Inactive, as the first response left it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from keyresponse.evidence import LocalEvidenceStore, verify_manifest
from keyresponse.ledger import Ledger
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import get_settings
from tasks import first_response


@pytest.fixture
def home(sandbox: MotoSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path))
    monkeypatch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_the_before_snapshot_shows_the_key_active(home: Path, unique_name: str) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    key = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    other = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    incident = "inc-first-response-snapshot"
    assert first_response.claim(incident, key, home)

    outcome = first_response.contain(incident, key)  # the whole of it, the work after the write inline
    assert outcome["status"] == "applied", outcome
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=unique_name)["AccessKeyMetadata"]}
    assert statuses == {key: "Inactive", other: "Active"}

    store = LocalEvidenceStore(incident, home)
    names = [item.name for item in verify_manifest(store)]
    snapshots = [n for n in names if n.startswith("before-") and n.endswith(f"-user-{unique_name}.json")]
    assert len(snapshots) == 1, names
    state = json.loads(store.get(snapshots[0]) or b"{}")
    assert {k["AccessKeyId"]: k["Status"] for k in state["access_keys"]} == {key: "Active", other: "Active"}
    taken = state["snapshot"]
    assert taken["change"] == "deactivate_access_key"
    assert taken["access_keys_listed_at"] <= taken["change_written_at"] <= taken["rest_read_from"], taken
    entry, denied = Ledger(incident, home).applied()  # the key first, then the deny on its owner
    assert entry.before == {"status": "Active"} and entry.after == {"status": "Inactive"}
    assert (denied.action, denied.target["id"]) == ("attach_session_revocation_policy", unique_name)
    assert taken["change_written_at"] <= entry.applied_at
    assert any("the owner's keys as listed before the change" in note for note in outcome["plan"]["notes"]), outcome
    stored = [json.loads(line) for line in (store.get("ledger.jsonl") or b"").splitlines()]
    assert [e["entry_id"] for e in stored] == [entry.entry_id, denied.entry_id]
