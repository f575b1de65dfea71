"""Readiness for the next incident: what is in place in an account, per region, and what to fix.

    checks = assess(clients, settings, ReadinessOptions(regions=["us-east-1", "eu-west-1"]))
    readiness_for_report(checks)       # [{"check", "status", "evidence", "fix"}] for the report
    plan = plan_hardening(checks, …)   # tasks.hardening: the approved actions that close the gaps

Each `Check` has an id, a status, the evidence it was judged on and the fix. The checks follow the
preparation part of AWS's credential-compromise playbook (IRP-CredCompromise, "Prepare"): GuardDuty,
the trail and its data events, Object Lock on its bucket, the Athena table, the alert routes to the
webhook, the responder's role, the root user, long-lived keys. Each is a `ReadinessCheck` unit in a
module of its own under `checks/` (the file name is its id), declaring what it checks, why, the fix,
its references, ATT&CK techniques and CIS recommendations, its IAM reads and the hardening actions
that close it; `CHECKS` is the registry, in the order `assess` runs them.

Status is `pass`, `fail`, or `not_verifiable`: a fact this environment cannot show (the sandbox has
no root user; a read the responder is not allowed to make) is never reported as passing.

| module | holds |
|---|---|
| `model.py` | `Check`, `ReadinessOptions` |
| `unit.py` | the check contract (`ReadinessCheck`) and what a check reads from (`Scope`) |
| `checks/` | one check per module, and the registry `CHECKS` |
| `trails.py`, `routes.py` | the trails as the checks read them; the alert routes and the names of what delivers them |
| `assessment.py` | `assess`: the account and regions, then every check; `PERMISSIONS`, derived from the checks |
| `render.py` | the report's recommendations, the counts, the JSON, the Markdown table |
"""

from __future__ import annotations

from keyresponse.readiness.assessment import PERMISSIONS, assess
from keyresponse.readiness.checks import CHECKS
from keyresponse.readiness.model import Check, ReadinessOptions, Status
from keyresponse.readiness.render import readiness_for_report, render_markdown, summary, to_json
from keyresponse.readiness.unit import ReadinessCheck

__all__ = [
    "CHECKS",
    "PERMISSIONS",
    "Check",
    "ReadinessCheck",
    "ReadinessOptions",
    "Status",
    "assess",
    "readiness_for_report",
    "render_markdown",
    "summary",
    "to_json",
]
