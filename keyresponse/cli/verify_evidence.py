"""`keyresponse verify-evidence INCIDENT_ID`: check the evidence against its chained manifest and its head.

What is checked (`keyresponse/evidence.py` `verify_evidence`):
- the manifest's hash chain: each entry hashes the one before it, so an entry edited (an evidence
  file changed and re-hashed into the manifest) breaks the chain;
- every object against its SHA-256: in S3, every version an entry pins, and that each object's
  current version is still the pinned one (a version put over it, or a delete marker, is named);
- the chain's head against the heads recorded in `<home>/incidents/<id>/manifest-head.jsonl` as the
  evidence was stored, and against a published head: `--head HASH` (from the Prefect artifact
  `evidence-<id>`) or `--prefect` (read that artifact from the Prefect server). A manifest rewritten
  whole, or an older one put back, disagrees with them.

Exit 0 when everything holds; exit 1 naming each problem (or when the incident has no manifest, or
`--prefect` finds no artifact); exit 2 on a bad incident id or head. `--allow-unchained` accepts a
manifest written before the chain existed, with a warning: its SHA-256s are checked, but nothing
shows it was not re-hashed.
"""

from __future__ import annotations

import re

import typer

from keyresponse.cli._common import command, fail, print_json
from keyresponse.errors import InputError, VerificationFailed
from keyresponse.ledger import validate_incident_id

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def published_head(incident_id: str, head: str | None, prefect: bool) -> str | None:
    """The head to check the chain against: `--head`, or the latest `evidence-<id>` artifact (`--prefect`)."""
    if head is not None:
        head = head.strip().lower()
        if not _HEX64.fullmatch(head):
            raise InputError(f"--head must be a SHA-256 in hex (64 characters), not {head!r}")
    if prefect:
        from keyresponse.report import evidence_artifact_key, published_evidence_head

        found = published_evidence_head(incident_id)
        if found is None:
            fail(f"no Prefect artifact {evidence_artifact_key(incident_id)} publishes a head for {incident_id}", 1)
        if head is not None and head != found:
            fail(f"--head {head[:12]}… is not the head the Prefect artifact publishes ({found[:12]}…)", 1)
        head = found
    return head


@command
def verify_evidence(
    incident_id: str = typer.Argument(..., help="The incident whose evidence to verify."),
    as_json: bool = typer.Option(False, "--json", help="Print the verified items as JSON."),
    head: str | None = typer.Option(None, "--head", help="A published chain head (the Prefect artifact evidence-<id>)."),
    prefect: bool = typer.Option(False, "--prefect", help="Read the published head from the Prefect server's artifact."),
    allow_unchained: bool = typer.Option(False, "--allow-unchained",
                                         help="Accept a manifest written before the chain (warns)."),
) -> None:
    """Check the incident's evidence (S3 Object Lock bucket or local folder) against its chained SHA-256 manifest."""
    from keyresponse.evidence import MANIFEST, open_store, verify_evidence

    store = open_store(validate_incident_id(incident_id))
    if store.get(MANIFEST) is None:
        fail(f"incident {incident_id} has no evidence manifest at {store.location}", 1)
    expected = published_head(incident_id, head, prefect)
    try:
        result = verify_evidence(store, head=expected, allow_unchained=allow_unchained)
    except VerificationFailed as exc:
        fail(str(exc), 1)
    for warning in result.warnings:
        typer.echo(f"keyresponse: warning: {warning}", err=True)
    if as_json:
        print_json({"incident_id": incident_id, "location": store.location, "intact": True, "head": result.head,
                    "entries": len(result.manifest.items), "objects_checked": result.objects_checked,
                    "anchors": result.anchors, "warnings": result.warnings,
                    "items": [item.model_dump(mode="json") for item in result.items]})
        return
    typer.echo(f"evidence of {incident_id} intact: {len(result.items)} object(s) at {store.location} "
               f"match their SHA-256 in the manifest ({len(result.manifest.items)} chained entries, "
               f"{result.objects_checked} stored version(s) re-hashed); chain head {result.head or 'none'} "
               f"agrees with {' and '.join(result.anchors) or 'nothing'}")
