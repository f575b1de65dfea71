"""The checks for people: the report's recommendations, the counts, the JSON of `--json`, and a Markdown table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import JsonValue

from keyresponse import markdown as md
from keyresponse.readiness.model import Check


def readiness_for_report(checks: Iterable[Check]) -> list[dict[str, str]]:
    """For the post-incident report's recommendations: every check that is not passing, gaps first."""
    order = {"fail": 0, "not_verifiable": 1, "pass": 2}
    rows = sorted((c for c in checks if c.status != "pass"), key=lambda c: (order[c.status], c.account_id, c.label))
    return [{"check": f"{c.label} ({c.account_id})" if c.account_id else c.label, "status": c.status,
             "evidence": c.evidence, "fix": c.fix} for c in rows]


def summary(checks: Sequence[Check]) -> dict[str, int]:
    return {status: sum(1 for c in checks if c.status == status) for status in ("pass", "fail", "not_verifiable")}


def to_json(checks: Sequence[Check]) -> dict[str, JsonValue]:
    """The JSON of `keyresponse readiness --json`."""
    counts: dict[str, JsonValue] = dict(summary(checks))
    return {"summary": counts,
            "checks": [c.model_dump(mode="json", exclude={"facts"}) for c in checks]}


def render_markdown(checks: Sequence[Check]) -> str:
    """A table for a Prefect artifact or a terminal; the evidence quotes the account (trail, bucket and rule
    names), so every cell goes through keyresponse.markdown."""
    mark = {"pass": "pass", "fail": "**FAIL**", "not_verifiable": "not verifiable here"}
    counts = summary(checks)
    lines = [f"# Readiness — {counts['pass']} pass, {counts['fail']} fail, "
             f"{counts['not_verifiable']} not verifiable", "",
             md.table(["check", "account", "region", "status", "evidence", "fix"],
                      [[md.code(c.id), md.code(c.account_id), c.region or "", md.Markdown(mark[c.status]), c.evidence,
                        c.fix] for c in checks])]
    return "\n".join(lines) + "\n"
