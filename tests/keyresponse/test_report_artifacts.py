"""The report is published as a Prefect Markdown artifact keyed by incident, on a real Prefect server."""

from __future__ import annotations

from pathlib import Path

from keyresponse.report import artifact_key, load_incident, publish_artifacts, render_markdown

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
