"""`keyresponse investigate` as a responder runs it: real process, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from footholds import ADMIN_ACCOUNT, ADMIN_USER, CREATOR_KEY, ROOT_MADE_KEY, root_creates_key, sign_in_as

from keyresponse.engines.layout import write_trail_files

FIXTURES = Path(__file__).parents[2] / "fixtures" / "cloudtrail"


def run_cli(*args: str, home: Path, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYRESPONSE_"))}
    env.update(KEYRESPONSE_HOME=str(home), HOME=str(home))  # no AWS credentials: logs only
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "keyresponse", "investigate", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trail")
    records = json.loads((FIXTURES / "stratus_red_team_detonation_logs.json").read_text())["Records"]
    write_trail_files(records, root)
    day = next(root.glob("AWSLogs/*/CloudTrail/*/*/*/*"))
    (day / "123456789012_CloudTrail_us-east-1_20240801T0000Z_corruptcorrupt01.json.gz").write_bytes(b"\x1f\x8bnot gzip")
    (day / "123456789012_CloudTrail_us-east-1_20240801T0005Z_notjsonnotjson01.json.gz").write_bytes(
        __import__("gzip").compress(b"{this is not json"))
    return root


def _backdoor_key() -> str:
    records = json.loads((FIXTURES / "stratus_red_team_detonation_logs.json").read_text())["Records"]
    labels = json.loads((FIXTURES / "stratus_red_team_detonation_logs.labels.json").read_text())
    return next(records[label["index"]]["userIdentity"]["accessKeyId"] for label in labels
                if label["technique"] == "aws.persistence.iam-backdoor-role")


def test_prints_exactly_the_investigation_object_and_reports_corrupt_files(trail: Path, tmp_path: Path) -> None:
    result = run_cli("--access-key-id", _backdoor_key(), "--logs", str(trail), "--start", "2024-07-01T00:00:00Z",
                     "--end", "2024-09-01T00:00:00Z", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)  # stdout is clean JSON: progress goes to stderr
    assert {"access_key_id", "credentials", "persistence", "verdict", "logging_gaps", "engine"} <= set(payload)
    assert {p["event_name"] for p in payload["persistence"]} == {"UpdateAssumeRolePolicy"}
    gaps = " ".join(payload["logging_gaps"])
    assert "corruptcorrupt01" in gaps and "notjsonnotjson01" in gaps
    assert "no AWS credentials found" in gaps
    assert payload["engine"] == "duckdb"


@pytest.mark.parametrize(("args", "message"), [
    (["--access-key-id", "AKIA-not-a-key", "--logs", "{trail}"], "is not an AWS access key id"),
    (["--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--logs", "/nonexistent/logs"], "no such folder"),
    (["--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--logs", "{empty}"], "no CloudTrail files"),
    (["--access-key-id", "AKIAIOSFODNN7EXAMPLE"], "--logs is required"),
    (["--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--logs", "{trail}", "--start", "2024-09-01T00:00:00Z",
      "--end", "2024-08-01T00:00:00Z"], "is not before"),
])
def test_bad_input_exits_2_with_one_line(trail: Path, tmp_path: Path, args: list[str], message: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(*[a.replace("{trail}", str(trail)).replace("{empty}", str(empty)) for a in args], home=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.fixture(scope="module")
def foothold_trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stratus's records, a sign-in by the user its detonation created and a root-made key (tests/footholds.py)."""
    root = tmp_path_factory.mktemp("footholds")
    records = json.loads((FIXTURES / "stratus_red_team_detonation_logs.json").read_text())["Records"]
    write_trail_files([*records, sign_in_as(records, ADMIN_USER, ADMIN_ACCOUNT, "2024-08-01T13:40:00Z"),
                       root_creates_key(records, ROOT_MADE_KEY)], root)
    return root


def _both(key: str, trail: Path, home: Path) -> tuple[dict[str, Any], str]:
    window = ("--start", "2024-07-01T00:00:00Z", "--end", "2024-09-01T00:00:00Z")
    as_json = run_cli("--access-key-id", key, "--logs", str(trail), *window, "--json", home=home)
    text = run_cli("--access-key-id", key, "--logs", str(trail), *window, home=home, columns=60)
    assert as_json.returncode == text.returncode == 0, as_json.stderr + text.stderr
    return json.loads(as_json.stdout), text.stdout


def test_plain_text_prints_every_identifier_whole_on_a_narrow_terminal(foothold_trail: Path, tmp_path: Path) -> None:
    """60 columns: tables cut to fit used to end key ids and ARNs in "…", and credentials looked alike."""
    inv, text = _both(CREATOR_KEY, foothold_trail, tmp_path)
    ids = {c["access_key_id"] for c in inv["credentials"]} | {c["principal_arn"] for c in inv["credentials"]}
    ids |= {p["resource"] for p in inv["persistence"]} | {ip["ip"] for ip in inv["source_ips"]}
    assert len(ids) >= 5 and "…" not in text
    for value in ids:
        assert value in text, value
    assert "AdministratorAccess" in text and "ConsoleLogin" in text


def test_plain_text_and_json_show_the_keys_creation_event(foothold_trail: Path, tmp_path: Path) -> None:
    inv, text = _both(ROOT_MADE_KEY, foothold_trail, tmp_path)
    made = inv["key_creation"]
    assert (made["event_name"], made["created_by_type"]) == ("CreateAccessKey", "Root")
    assert f"Key created: CreateAccessKey at {made['event_time']} for deploy-bot by {made['created_by_arn']} (Root" in text
