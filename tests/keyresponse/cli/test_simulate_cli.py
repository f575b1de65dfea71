"""`keyresponse simulate` as a user runs it: a real process, its own sandbox, its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyresponse.sandbox.cloudtrail import iter_records
from keyresponse.sandbox.record_schema import validator

pytestmark = pytest.mark.slow  # simulations of up to 200k events in real processes


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "keyresponse", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, timeout=600, check=False)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("args", "message"), [
    (["--scenario", "no-such-thing", "--out", "{tmp}/x"], "unknown scenario 'no-such-thing'"),
    (["--scenario", "recon-only", "--out", "/proc/keyresponse-cannot-write-here"], "cannot create output folder"),
    (["--scenario", "recon-only", "--out", "{tmp}/x", "--events", "-5"], "--events must be zero or more"),
    (["--scenario", "recon-only", "--out", "{tmp}/x", "--end", "yesterday"], "is not an ISO-8601 time"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli("simulate", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert result.stdout == ""


def test_lists_every_scenario() -> None:
    result = run_cli("simulate", "--list")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["recon-only", "scanner-validation", "persistence", "cryptomining", "data-exfiltration",
                     "pivot-chain", "llmjacking-ses", "false-positive"]


def test_same_seed_gives_byte_identical_logs(tmp_path: Path) -> None:
    common = ["simulate", "--scenario", "pivot-chain", "--events", "20000", "--seed", "11",
              "--end", "2026-11-20T00:00:00Z"]
    first = run_cli(*common, "--out", str(tmp_path / "a"))
    second = run_cli(*common, "--out", str(tmp_path / "b"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert len([k for k in a if k.endswith(".json.gz")]) > 500
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)
    other = run_cli(*common[:-4], "--seed", "12", "--end", "2026-11-20T00:00:00Z", "--out", str(tmp_path / "c"))
    assert other.returncode == 0
    assert tree(tmp_path / "c") != a


def test_pivot_chain_at_200k_events_writes_layout_truth_and_valid_records(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("simulate", "--scenario", "pivot-chain", "--events", "200000", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["records"] == 200_000
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["scenario"] == "pivot-chain" and len(truth["attacker_credentials"]) >= 5
    check = validator()
    count = 0
    for record in iter_records(out):
        check(record)
        count += 1
    assert count == 200_000
    assert {p.name for p in (out / "alerts").iterdir()} >= {"guardduty.json", "health.json", "github.json"}
