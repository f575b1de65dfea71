"""Shared test data for the intel tests: fixture paths and the Stratus records by technique."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from keyresponse.intel import IntelConfig, event_from_record

ROOT = Path(__file__).resolve().parents[3]
INTEL = ROOT / "tests" / "fixtures" / "intel"
STRATUS = ROOT / "tests" / "fixtures" / "cloudtrail" / "stratus_red_team_detonation_logs.json"


def full_config(**extra: Any) -> IntelConfig:
    return IntelConfig(aws_ranges=INTEL / "aws-ip-ranges.sample.json", gcp_ranges=INTEL / "gcp-cloud.sample.json",
                       azure_ranges=INTEL / "azure-servicetags.sample.json", tor_exits=INTEL / "tor-exits.sample.txt",
                       threat_lists={"sample": INTEL / "threat-list.sample.txt"}, **extra)


def stratus_by_technique() -> dict[str, list[dict[str, Any]]]:
    records = json.loads(STRATUS.read_text())["Records"]
    labels = json.loads(STRATUS.with_suffix(".labels.json").read_text())
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for label in labels:
        out[label["technique"]].append(event_from_record(records[label["index"]]))
    return dict(out)
