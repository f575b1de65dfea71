"""Access key ids: recognise, validate and redact them."""

from __future__ import annotations

import re

from keyresponse.errors import InvalidAccessKeyId

#: Long-term user keys start AKIA, temporary (STS) keys ASIA, then 16 upper-case letters or digits
#: (AWS issues base32, A-Z2-7; moto issues A-Z0-9, so we accept both).
ACCESS_KEY_ID_RE = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$", re.ASCII)
#: The same, for finding key ids inside free text (logs, alert bodies).
ACCESS_KEY_ID_IN_TEXT_RE = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])", re.ASCII)


def validate_access_key_id(value: str) -> str:
    """Return `value` stripped if it is an access key id; raise `InvalidAccessKeyId` otherwise."""
    candidate = value.strip() if isinstance(value, str) else value
    if not isinstance(candidate, str) or not ACCESS_KEY_ID_RE.fullmatch(candidate):
        shown = repr(value)[:40]
        raise InvalidAccessKeyId(
            f"{shown} is not an AWS access key id: expected AKIA or ASIA followed by 16 characters A-Z, 0-9"
        )
    return candidate


def is_temporary(access_key_id: str) -> bool:
    """True for STS session credentials (ASIA…)."""
    return access_key_id.startswith("ASIA")


