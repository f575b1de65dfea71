"""`keyresponse scan-keys`: the scan without a Prefect server (here, because it runs the same task bodies)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from keyresponse.cli import app
from keyresponse.sandbox.seed import SeededAccount


def test_prints_json_with_the_planted_cases_when_run_with_json(seeded: SeededAccount, tmp_path: Path) -> None:
    exceptions = tmp_path / "exceptions.json"
    exceptions.write_text('[{"principal": "intern-lee", "reason": "leaves Friday", "expires": "2020-01-01"}]')
    result = CliRunner().invoke(app, ["scan-keys", "--json", "--no-save", "--max-age-days", "365",
                                      "--exceptions", str(exceptions)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    long_lived = {f["user_name"] for f in payload["findings"]
                  if f["check"] == "long_lived" and f["user_name"] in seeded.users}
    assert long_lived == {"legacy-integration", "old-monitoring"}  # 540 and 400 days; 200 is under 365
    assert [e["exception"]["principal"] for e in payload["expired_exceptions"]] == ["intern-lee"]


def test_exits_2_with_one_line_when_exceptions_file_is_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "exceptions.yaml"
    bad.write_text("- principal: bob\n")
    result = CliRunner().invoke(app, ["scan-keys", "--no-save", "--exceptions", str(bad)])
    assert result.exit_code == 2
    assert "exception #1" in result.stderr and "reason: Field required" in result.stderr
