"""`keyresponse policy`: print the responder's least-privilege IAM policy (JSON); with
`--readiness`, the policy of the role that runs `keyresponse readiness --apply` instead."""

from __future__ import annotations

import typer

from keyresponse.cli._common import command, print_json


@command
def policy(
    evidence_bucket: str | None = typer.Option(
        None, "--evidence-bucket", help="Limit S3 to this bucket (default: KEYRESPONSE_EVIDENCE_BUCKET)."),
    readiness: bool = typer.Option(
        False, "--readiness", help="The policy of the role that runs `keyresponse readiness --apply` (hardening)."),
    responder: list[str] = typer.Option(
        [], "--responder", help="An identity the responder runs as (ARN or role name), denied every IAM write on "
                                "itself besides KEYRESPONSE_RESPONSE_ROLE_NAME (repeatable)."),
) -> None:
    """Print the IAM policy a responder needs, generated from the actions' declared permissions."""
    from keyresponse.settings import get_settings
    from tasks.iam_policy import readiness_policy, responder_policy

    if readiness:
        print_json(readiness_policy())
        return
    print_json(responder_policy(evidence_bucket or get_settings().evidence_bucket, responder_principals=responder))
