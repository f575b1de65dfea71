"""The report and the evidence head as Prefect artifacts: `incident-<id>` (the Markdown report) and
`evidence-<id>` (the evidence manifest's chain head, read back by `keyresponse verify-evidence`)."""

from __future__ import annotations

import re

from keyresponse import markdown
from keyresponse.errors import KeyResponseError
from keyresponse.incident import Incident
from keyresponse.report.render import render_markdown


def artifact_key(incident_id: str) -> str:
    """The Prefect artifact key of an incident: lowercase letters, digits and dashes only."""
    body = re.sub(r"[^a-z0-9-]+", "-", incident_id.lower()).strip("-")
    return f"incident-{body}"[:100]


def publish_artifacts(incident: Incident) -> str:
    """Publish the Markdown report as the Prefect artifact `incident-<id>`; return the artifact id.

    Inside a flow run the artifact is attached to that run; outside one it is stored on its own.
    """
    from prefect.artifacts import create_markdown_artifact

    artifact_id = create_markdown_artifact(
        key=artifact_key(incident.incident_id), markdown=render_markdown(incident),
        description=f"Incident report {markdown.code(incident.incident_id)} ({markdown.text(incident.status)})")
    return str(artifact_id)


def evidence_artifact_key(incident_id: str) -> str:
    """The Prefect artifact key of an incident's evidence head: `evidence-<incident>`."""
    return "evidence-" + artifact_key(incident_id).removeprefix("incident-")


#: How the head is written in the evidence artifact, and read back (`published_evidence_head`).
_HEAD_LINE = "Manifest chain head: `{head}`"
_HEAD_RE = re.compile(r"Manifest chain head: `([0-9a-f]{64})`")


def evidence_head_markdown(incident_id: str, head: str, entries: int, location: str) -> str:
    """The evidence artifact: the manifest's chain head, where the evidence is, and how to check it."""
    return "\n".join([
        f"# Evidence of incident {markdown.text(incident_id)}", "",
        _HEAD_LINE.format(head=head), "",
        f"{entries} manifest entries at {markdown.code(location)}. Each entry hashes the one before it, so this head",
        "commits to every entry up to it: an evidence file edited and re-hashed into the manifest, or an older",
        "manifest put back, no longer has this head in its chain.", "",
        f"Check: `keyresponse verify-evidence {incident_id} --head {head}` (or `--prefect` to read this artifact).",
    ]) + "\n"


def publish_evidence_head(incident_id: str, head: str, entries: int, location: str) -> str:
    """Publish the evidence manifest's chain head as the Markdown artifact `evidence-<id>`; return its id.

    It is the copy of the head kept outside the evidence store and the ledger folder: a new version
    of the artifact each time the post-incident flow runs (earlier heads stay in the server's history)."""
    from prefect.artifacts import create_markdown_artifact

    artifact_id = create_markdown_artifact(
        key=evidence_artifact_key(incident_id), markdown=evidence_head_markdown(incident_id, head, entries, location),
        description=f"Evidence manifest chain head of incident {incident_id}")
    return str(artifact_id)


def published_evidence_head(incident_id: str) -> str | None:
    """The head in the latest `evidence-<id>` artifact on the Prefect server (PREFECT_API_URL); None when
    there is no such artifact. Raises `KeyResponseError` when the server cannot be read."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    key = evidence_artifact_key(incident_id)
    try:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                          sort=ArtifactSort.CREATED_DESC, limit=1)
    except Exception as exc:  # httpx, Prefect: say what could not be read
        raise KeyResponseError(f"could not read the Prefect artifact {key}: {type(exc).__name__}: {exc}") from exc
    if not found:
        return None
    match = _HEAD_RE.search(str(found[0].data or ""))
    if match is None:
        raise KeyResponseError(f"the Prefect artifact {key} names no manifest chain head")
    return match.group(1)


