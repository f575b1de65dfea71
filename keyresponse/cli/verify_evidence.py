"""`keyresponse verify-evidence INCIDENT_ID`: re-read every evidence object and compare it with the manifest.

Exit 0 when every object the manifest lists is present and matches its SHA-256; exit 1 naming each
missing or altered object (or when the incident has no manifest at all); exit 2 on a bad incident id.
"""

from __future__ import annotations

import typer

from keyresponse.cli._common import command, fail, print_json
from keyresponse.errors import VerificationFailed
from keyresponse.ledger import validate_incident_id


@command
def verify_evidence(
    incident_id: str = typer.Argument(..., help="The incident whose evidence to verify."),
    as_json: bool = typer.Option(False, "--json", help="Print the verified items as JSON."),
) -> None:
    """Check the incident's evidence (S3 Object Lock bucket or local folder) against its SHA-256 manifest."""
    from keyresponse.evidence import MANIFEST, open_store, verify_manifest

    store = open_store(validate_incident_id(incident_id))
    if store.get(MANIFEST) is None:
        fail(f"incident {incident_id} has no evidence manifest at {store.location}", 1)
    try:
        items = verify_manifest(store)
    except VerificationFailed as exc:
        fail(str(exc), 1)
    if as_json:
        print_json({"incident_id": incident_id, "location": store.location, "intact": True,
                    "items": [item.model_dump(mode="json") for item in items]})
        return
    typer.echo(f"evidence of {incident_id} intact: {len(items)} object(s) at {store.location} "
               "match their SHA-256 in the manifest")
