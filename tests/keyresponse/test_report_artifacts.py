"""The report is published as a Prefect Markdown artifact keyed by incident, on a real Prefect server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from keyresponse.report import (
    artifact_key,
    load_incident,
    publish_artifacts,
    published_evidence_head,
    render_markdown,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "incidents"


def test_publishes_the_markdown_report_under_the_incident_key(prefect_server: str) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    incident = load_incident(FIXTURES / "pivot_chain_incident.json")

    @flow(name="publish-incident-report")
    def publish() -> str:
        return publish_artifacts(incident)

    artifact_id = publish()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[artifact_key(incident.incident_id)])))
    assert [str(a.id) for a in found] == [artifact_id]
    assert found[0].key == "incident-ir-2026-11-19-pivot-chain" and found[0].type == "markdown"
    assert found[0].data == render_markdown(incident)
    assert found[0].flow_run_id is not None  # attached to the run that published it


def test_publishes_the_evidence_chain_head_which_verify_evidence_checks(
        prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The post-incident flow's tasks keep incident.json and publish the manifest's head as the artifact
    `evidence-<id>`. An intruder who rewrites the record, re-chains the manifest and rewrites the head
    record in the ledger folder passes the local check, not the one against the published head."""
    from prefect import flow
    from typer.testing import CliRunner

    from flows.post_incident import publish_evidence_head, store_incident_record
    from keyresponse.cli import app
    from keyresponse.evidence import LocalEvidenceStore, genesis
    from keyresponse.settings import get_settings

    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path))
    monkeypatch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()
    incident = load_incident(FIXTURES / "pivot_chain_incident.json")
    incident_id = incident.incident_id

    @flow(name="keep-incident-evidence")
    def keep() -> str | None:
        store_incident_record(incident_id, incident.record())
        return publish_evidence_head(incident_id)

    try:
        head = keep()
        store = LocalEvidenceStore(incident_id, tmp_path)
        assert head is not None and head == store.manifest().head
        assert published_evidence_head(incident_id) == head
        verify = CliRunner().invoke
        result = verify(app, ["verify-evidence", incident_id, "--prefect"])
        assert result.exit_code == 0 and f"the published head {head[:12]}…" in result.output, result.output

        record = store.folder / "incident.json"
        assert '"status": "closed"' in record.read_text()
        record.write_text(record.read_text().replace('"status": "closed"', '"status": "false_positive"', 1))
        manifest = store.manifest()
        prev = genesis(incident_id)
        for item in manifest.items:
            if item.name == "incident.json":
                item.sha256, item.size = hashlib.sha256(record.read_bytes()).hexdigest(), record.stat().st_size
            item.prev = prev
            item.chain = prev = item.link_hash()
            store.ledger.record_manifest_head(item.seq or 0, item.chain, item.name)
        (store.folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))

        assert verify(app, ["verify-evidence", incident_id]).exit_code == 0  # the local record agrees now
        result = verify(app, ["verify-evidence", incident_id, "--prefect"])
        assert result.exit_code == 1 and f"the published head {head[:12]}… is not in the manifest's chain" \
            in result.output, result.output
        result = verify(app, ["verify-evidence", "inc-never-published", "--prefect"])
        assert result.exit_code == 1
    finally:
        get_settings.cache_clear()
