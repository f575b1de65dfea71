"""POST-INCIDENT: keep the record as evidence, publish the evidence's chain head, render the report,
publish it to the Prefect UI.

The head of the evidence manifest's hash chain (`keyresponse/evidence.py`), taken once `incident.json`
is in it, goes to the Prefect artifact `evidence-<id>`: a copy outside the evidence store and the
ledger folder that `keyresponse verify-evidence --prefect` checks the manifest against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.logging import get_run_logger

from keyresponse.evidence import open_store
from keyresponse.retry import retry_on_transient
from keyresponse.settings import get_settings


@task(name="store_incident_record", task_run_name="store_incident_record:{incident_id}", retries=2,
      retry_delay_seconds=[1, 5], retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_transient)
def store_incident_record(incident_id: str, record: dict[str, Any]) -> str:
    """incident.json into the evidence store (S3 with Object Lock, or the local folder), in the manifest."""
    from keyresponse.aws import client

    settings = get_settings()
    store = open_store(incident_id, s3=client("s3") if settings.evidence_bucket else None, settings=settings)
    store.put_json("incident.json", record)
    local = settings.home / "incidents" / incident_id / "incident.json"
    local.parent.mkdir(parents=True, exist_ok=True)
    import json

    local.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return store.location


@task(name="publish_evidence_head", task_run_name="publish_evidence_head:{incident_id}", retries=2,
      retry_delay_seconds=[1, 5], retry_jitter_factor=0.5, retry_condition_fn=retry_on_transient)
def publish_evidence_head(incident_id: str) -> str | None:
    """The manifest's chain head as the Prefect artifact `evidence-<id>`; returns the head (None: no evidence)."""
    from keyresponse.aws import client
    from keyresponse.report import publish_evidence_head as publish

    settings = get_settings()
    store = open_store(incident_id, s3=client("s3") if settings.evidence_bucket else None, settings=settings)
    manifest = store.manifest()
    if manifest.head is None:
        return None
    publish(incident_id, manifest.head, len(manifest.items), store.location)
    return manifest.head


@task(name="render_report", task_run_name="render_report:{incident_id}")
def render_report(incident_id: str, record: dict[str, Any]) -> dict[str, str]:
    """report.md, report.html, incident.json and the queries as runnable .sql files; the UI artifacts."""
    from keyresponse.incident import Incident
    from keyresponse.report import publish_artifacts, write_report

    incident = Incident.model_validate(record)
    out = get_settings().home / "incidents" / incident_id / "report"
    paths = write_report(incident, out)
    publish_artifacts(incident)
    return {name: str(Path(p)) for name, p in paths.items()} if isinstance(paths, dict) else {"out": str(out)}


@task(name="check_readiness", task_run_name="check_readiness:{incident_id}", retries=1, retry_delay_seconds=5, retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_transient)
def check_readiness(incident_id: str, regions: list[str]) -> list[dict[str, str]]:
    """What was missing for this incident (GuardDuty, trail, data events, alert rules…): the report's
    recommendations carry each gap with its fix."""
    from keyresponse.readiness import ReadinessOptions, assess, readiness_for_report

    return readiness_for_report(assess(None, get_settings(), ReadinessOptions(regions=regions)))


@flow(name="post-incident", flow_run_name="post-incident:{incident_id}")
def post_incident(incident_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """Readiness gaps, then evidence (it must survive a failing renderer), then the report."""
    log = get_run_logger()
    investigation = record.get("investigation") or {}
    regions = sorted({get_settings().region, *(investigation.get("regions") or [])})
    try:
        record["readiness"] = check_readiness(incident_id, regions)
    except Exception as exc:
        log.warning("readiness check failed, the report goes out without it: %s", exc)
    location = store_incident_record(incident_id, record)
    head = None
    try:
        head = publish_evidence_head(incident_id)
    except Exception as exc:  # the ledger folder still records the head; the report must go out
        log.warning("the evidence chain head was not published as an artifact: %s", exc)
    report = render_report(incident_id, record)
    log.info("incident %s: evidence at %s (chain head %s), report %s", incident_id, location, head, report)
    return {"evidence": location, "evidence_head": head, "report": report, "readiness": record.get("readiness", [])}
