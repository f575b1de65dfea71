"""The root user has no access key (once per account; not verifiable on the sandbox, which has no root user)."""

from __future__ import annotations

from keyresponse.readiness.checks._root import (
    ROOT_PERMISSIONS,
    ROOT_REFERENCES,
    summary_check,
)
from keyresponse.readiness.model import Check
from keyresponse.readiness.unit import ReadinessCheck, Scope


def _run(scope: Scope, region: str) -> Check:
    return summary_check(CHECK, scope, "AccountAccessKeysPresent", passes_when_set=False)


CHECK = ReadinessCheck(
    id="root_access_keys",
    title="The root user has no access key",
    per="account",
    severity="critical",
    rationale="A root access key is the one key no IAM policy limits and no IAM API can deactivate (keyresponse "
              "can only escalate it): exposed, it is the whole account until someone signs in as root.",
    remediation="Delete the root user's access keys (as root, in the console: Security credentials).",
    permissions=ROOT_PERMISSIONS,
    run=_run,
    references=ROOT_REFERENCES,
    attack=("T1078.004",),
    cis=("1.4",),
)
