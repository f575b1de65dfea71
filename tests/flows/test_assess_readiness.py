"""The assess_readiness flow on a real Prefect server and the session's moto server (read-only run)."""

from __future__ import annotations

from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.assess_readiness import ReadinessOutcome, assess_readiness
from keyresponse.sandbox import MotoSandbox


async def _artifact_keys() -> set[str]:
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["readiness-checks", "readiness-plan", "readiness-cloudformation"])))
    return {a.key for a in found if a.key}


def test_reports_checks_plan_and_template_without_changing_anything_when_not_hardening(
    sandbox: MotoSandbox, prefect_server: str
) -> None:
    import asyncio

    outcome = assess_readiness(regions=["us-east-1"], trail_bucket="readiness-flow-bucket", data_events=[])
    assert isinstance(outcome, ReadinessOutcome)
    ids = {c.id for c in outcome.checks}
    assert {"guardduty_enabled", "cloudtrail_multi_region_logging", "root_mfa", "long_lived_access_keys"} <= ids
    assert "cloudtrail_data_events" not in ids  # not wanted
    assert {c.status for c in outcome.checks if c.id.startswith("root_")} == {"not_verifiable"}
    assert outcome.plan and outcome.applied == [] and outcome.approval is None
    assert outcome.cloudformation["AWSTemplateFormatVersion"] == "2010-09-09"
    assert all(set(r) == {"check", "status", "evidence", "fix"} for r in outcome.recommendations)
    assert asyncio.run(_artifact_keys()) == {"readiness-checks", "readiness-plan", "readiness-cloudformation"}
