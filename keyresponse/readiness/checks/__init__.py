"""The readiness checks: one `ReadinessCheck` per module (the file name is the check's id), and the
registry, explicit and in the order `assess` runs them (and the report lists them).

The order matters once: the trail checks come before the Object Lock and Athena checks, which act on
the trail's bucket (the trails are read once, by whichever asks first). Modules whose name starts with
`_` hold what several checks share.

To add a check: a module here with a docstring and a `CHECK`, and its entry below;
`tests/keyresponse/test_readiness_contracts.py` fails on a module left out of the registry, and on
missing or malformed metadata.
"""

from __future__ import annotations

from keyresponse.readiness.checks import (
    alerts_guardduty_findings,
    alerts_health_exposure,
    alerts_quarantine_policy,
    athena_cloudtrail_table,
    cloudtrail_data_events,
    cloudtrail_multi_region_logging,
    guardduty_enabled,
    long_lived_access_keys,
    responder_role,
    root_access_keys,
    root_mfa,
    trail_bucket_object_lock,
)
from keyresponse.readiness.unit import ReadinessCheck

CHECKS: tuple[ReadinessCheck, ...] = (
    guardduty_enabled.CHECK,
    cloudtrail_multi_region_logging.CHECK,
    cloudtrail_data_events.CHECK,
    trail_bucket_object_lock.CHECK,
    athena_cloudtrail_table.CHECK,
    alerts_guardduty_findings.CHECK,
    alerts_health_exposure.CHECK,
    alerts_quarantine_policy.CHECK,
    responder_role.CHECK,
    root_access_keys.CHECK,
    root_mfa.CHECK,
    long_lived_access_keys.CHECK,
)


def registry() -> dict[str, ReadinessCheck]:
    """The readiness checks by id."""
    return {check.id: check for check in CHECKS}
