"""The root user has MFA (once per account; not verifiable on the sandbox, which has no root user)."""

from __future__ import annotations

from keyresponse.readiness.checks._root import (
    ROOT_PERMISSIONS,
    ROOT_REFERENCES,
    summary_check,
)
from keyresponse.readiness.model import Check
from keyresponse.readiness.unit import ReadinessCheck, Scope


def _run(scope: Scope, region: str) -> Check:
    return summary_check(CHECK, scope, "AccountMFAEnabled", passes_when_set=True)


CHECK = ReadinessCheck(
    id="root_mfa",
    title="The root user has MFA",
    per="account",
    severity="high",
    rationale="No policy limits the root user, and it can undo any containment: MFA is what stands between a "
              "stolen root password and the whole account.",
    remediation="Enable MFA on the root user (hardware key or passkey preferred), as root, in the console.",
    permissions=ROOT_PERMISSIONS,
    run=_run,
    references=ROOT_REFERENCES,
    attack=("T1078.004",),
    cis=("1.5",),
)
