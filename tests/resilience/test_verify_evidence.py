"""`keyresponse verify-evidence`: intact evidence exits 0; a tampered or missing object exits 1 and is named."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keyresponse.cli import app
from keyresponse.evidence import LocalEvidenceStore, snapshot_user
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount
from keyresponse.sandbox.server import admin_client
from keyresponse.settings import get_settings

INCIDENT = "inc-evidence-01"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.fixture
def store(home: Path, sandbox: MotoSandbox, seeded: SeededAccount) -> LocalEvidenceStore:
    """Evidence as the response stores it: principal snapshots from the sandbox and a ledger copy."""
    store = LocalEvidenceStore(INCIDENT, home)
    iam = admin_client(sandbox.endpoint, "iam")
    for user in ("alice", "legacy-integration"):
        if user in seeded.users:
            store.put_json(f"before-user-{user}.json", snapshot_user(iam, user))
    store.put_json("investigation.json", {"access_key_id": seeded.keys[0].access_key_id, "verdict": "malicious"})
    store.put("ledger.jsonl", json.dumps({"action": "deactivate_access_key"}).encode() + b"\n")
    return store


def verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify-evidence", *args])
    return result.exit_code, result.output


def test_intact_evidence_exits_0(store: LocalEvidenceStore) -> None:
    code, output = verify(INCIDENT)
    assert code == 0, output
    assert f"{len(store.manifest().items)} object(s)" in output
    code, output = verify(INCIDENT, "--json")
    assert code == 0 and json.loads(output)["intact"] is True


def test_tampered_and_missing_files_exit_1_naming_each(store: LocalEvidenceStore) -> None:
    tampered = store.folder / "investigation.json"
    tampered.write_text(tampered.read_text().replace("malicious", "benign"))
    (store.folder / "ledger.jsonl").unlink()
    code, output = verify(INCIDENT)
    assert code == 1, output
    assert "investigation.json does not match its SHA-256" in output
    assert "ledger.jsonl is missing" in output


def test_one_flipped_byte_is_detected(store: LocalEvidenceStore) -> None:
    target = store.folder / "ledger.jsonl"
    data = bytearray(target.read_bytes())
    data[0] ^= 0x01
    target.write_bytes(bytes(data))
    code, output = verify(INCIDENT)
    assert code == 1 and "ledger.jsonl does not match" in output


def test_incident_without_evidence_exits_1(home: Path) -> None:
    code, output = verify("inc-never-seen")
    assert code == 1 and "no evidence manifest" in output


def test_bad_incident_id_exits_2(home: Path) -> None:
    code, output = verify("../etc")
    assert code == 2 and "not an incident id" in output


def _rehash_into_manifest(store: LocalEvidenceStore, name: str, old: str, new: str) -> None:
    """An intruder's edit: change the file, then put its new SHA-256 and size in the manifest."""
    path = store.folder / name
    path.write_text(path.read_text().replace(old, new))
    manifest = json.loads((store.folder / "manifest.json").read_text())
    for item in manifest["items"]:
        if item["name"] == name:
            item["sha256"], item["size"] = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size
    (store.folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_an_edit_rehashed_into_the_manifest_exits_1(store: LocalEvidenceStore) -> None:
    _rehash_into_manifest(store, "investigation.json", "malicious", "benign")
    code, output = verify(INCIDENT)
    assert code == 1, output
    assert "investigation.json) was edited after it was chained" in output


def test_the_published_head_is_checked(store: LocalEvidenceStore) -> None:
    head = store.manifest().head
    assert head is not None
    code, output = verify(INCIDENT, "--head", head, "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["head"] == head and any("published head" in a for a in report["anchors"])
    code, output = verify(INCIDENT, "--head", "0" * 64)
    assert code == 1 and "the published head 000000000000… is not in the manifest's chain" in output
    code, output = verify(INCIDENT, "--head", "not-a-hash")
    assert code == 2 and "--head must be a SHA-256" in output


def test_a_manifest_from_before_the_chain_needs_allow_unchained(store: LocalEvidenceStore) -> None:
    """Evidence stored by an older keyresponse: its hashes are checked, with a warning that nothing shows
    they were not re-hashed; without the flag it fails (an intruder could strip the chain too)."""
    manifest = json.loads((store.folder / "manifest.json").read_text())
    for item in manifest["items"]:
        for field in ("seq", "prev", "chain", "version_id"):
            item.pop(field)
    (store.folder / "manifest.json").write_text(json.dumps(manifest))
    store.ledger.manifest_heads.unlink()
    code, output = verify(INCIDENT)
    assert code == 1 and "carry no chain hash" in output
    code, output = verify(INCIDENT, "--allow-unchained")
    assert code == 0, output
    assert "warning: manifest entries 0 (" in output and "no chain head is recorded" in output
