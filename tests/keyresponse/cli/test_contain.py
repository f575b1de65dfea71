"""`keyresponse contain`, `undo` and `policy` from the command line, against the moto server."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import typer
from typer.testing import CliRunner

from keyresponse.cli.contain import contain
from keyresponse.cli.policy import policy
from keyresponse.cli.undo import undo
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import get_settings

app = typer.Typer()
app.command("contain")(contain)
app.command("undo")(undo)
app.command("policy")(policy)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path))
    monkeypatch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _status(user: str) -> set[str]:
    return {k["Status"] for k in boto3.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]}


def test_changes_nothing_without_apply_then_contains_and_undoes_with_it(
    sandbox: MotoSandbox, home: Path, unique_name: str
) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    key = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    other = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    runner = CliRunner()

    dry = runner.invoke(app, ["contain", "--access-key-id", key, "--json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] and [r["action"] for r in planned["plan"]] == [
        "deactivate_access_key", "attach_session_revocation_policy", "tag_principal"]
    assert _status(unique_name) == {"Active"} and not (home / "incidents").exists()

    applied = runner.invoke(app, ["contain", "--access-key-id", key, "--apply", "--yes", "--json"])
    assert applied.exit_code == 0, applied.output
    result = json.loads(applied.stdout)
    assert [e["action"] for e in result["ledger"]] == [r["action"] for r in planned["plan"]]
    keys = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=unique_name)["AccessKeyMetadata"]}
    assert keys == {key: "Inactive", other: "Active"}
    manifest = json.loads((home / "incidents" / result["incident_id"] / "evidence" / "manifest.json").read_text())
    assert {"investigation.json", "ledger.jsonl"} <= {i["name"] for i in manifest["items"]}

    again = runner.invoke(app, ["contain", "--access-key-id", key, "--apply", "--yes", "--json"])
    assert json.loads(again.stdout)["ledger"] == []

    undone = runner.invoke(app, ["undo", result["incident_id"], "--apply", "--yes", "--json"])
    assert undone.exit_code == 0, undone.output
    assert len(json.loads(undone.stdout)["undone"]) == 3
    assert _status(unique_name) == {"Active"}


def test_undoes_an_incident_whose_ledger_ends_in_a_torn_line(
    sandbox: MotoSandbox, home: Path, unique_name: str
) -> None:
    """A crash while an entry was being appended (the process killed mid-write) leaves a torn last line:
    `keyresponse undo` still replays the rest, says the line is torn, and its own records keep the
    ledger readable."""
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    key = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    runner = CliRunner()
    applied = runner.invoke(app, ["contain", "--access-key-id", key, "--apply", "--yes", "--json"])
    assert applied.exit_code == 0, applied.output
    incident = json.loads(applied.stdout)["incident_id"]
    ledger = home / "incidents" / incident / "ledger.jsonl"
    whole = ledger.read_text().splitlines()
    with open(ledger, "a") as handle:  # what a crash mid-append leaves: part of one more entry, no newline
        handle.write(whole[-1][:57])

    dry = runner.invoke(app, ["undo", incident, "--json"])
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert len(report["planned"]) == 3 and report["torn_line"]["line"] == 4
    assert "torn last line" in report["summary"]
    undone = runner.invoke(app, ["undo", incident, "--apply", "--yes"])
    assert undone.exit_code == 0, undone.output
    assert "torn last line" in undone.output and _status(unique_name) == {"Active"}
    again = runner.invoke(app, ["undo", incident, "--json"])
    assert again.exit_code == 0, again.output
    assert len(json.loads(again.stdout)["already_undone"]) == 3 and json.loads(again.stdout)["torn_line"] is None


def test_exits_2_with_one_line_when_the_key_id_is_malformed(home: Path) -> None:
    result = CliRunner().invoke(app, ["contain", "--access-key-id", "not-a-key"])
    assert result.exit_code == 2 and "is not an AWS access key id" in result.output


def test_prints_the_responder_policy(home: Path) -> None:
    result = CliRunner().invoke(app, ["policy", "--evidence-bucket", "acme-ir-evidence"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["Version"] == "2012-10-17"
    hardening = CliRunner().invoke(app, ["policy", "--readiness"])
    assert hardening.exit_code == 0
    sids = {s["Sid"] for s in json.loads(hardening.stdout)["Statement"]}
    assert {"ReadinessCloudtrail", "ReadinessIam", "ReadinessEvents"} <= sids and "IamResponse" not in sids
