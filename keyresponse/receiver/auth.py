"""Who sent an alert: the HMAC signature (`sign` makes one, as a client does), the EventBridge connection's
token, a static bearer token, and GitHub's signature; which of them may trigger automatic containment.

Which route takes which credential is the table in the package docstring (`keyresponse/receiver/__init__.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Literal

from fastapi import Request
from pydantic import SecretStr

from keyresponse.alerts import Source
from keyresponse.receiver.config import WebhookSettings
from keyresponse.receiver.wire import Rejected

SIGNATURE_HEADER = "X-Keyresponse-Signature"
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
#: A signature's timestamp: ASCII digits only (`str.isdigit` also takes "²" and other scripts' digits,
#: which `int` refuses), at most 12 of them (never a 5,000-digit number to convert before authentication).
_STAMP_RE = re.compile(r"[0-9]{1,12}", re.ASCII)


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `X-Keyresponse-Signature` value for `body`: `t=<unix>,v1=<hex HMAC-SHA256 of "t." + body>`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def sign_github(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value GitHub sends: `sha256=<hex HMAC-SHA256 of body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _check_signature(header: str, body: bytes, secrets: list[bytes], window: int) -> None:
    if not secrets:
        raise Rejected(401, "bad_signature", f"{SIGNATURE_HEADER} is not accepted: no HMAC secret is configured")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            parts = {}
            break
        parts.setdefault(name, []).append(value)
    stamps, given = parts.get("t", []), parts.get("v1", [])
    if len(stamps) != 1 or not _STAMP_RE.fullmatch(stamps[0]) or not given:
        raise Rejected(401, "bad_signature",
                       f"malformed {SIGNATURE_HEADER}: expected t=<unix seconds>,v1=<hex hmac-sha256>")
    stamp = int(stamps[0])
    skew = abs(time.time() - stamp)
    if skew > window:
        raise Rejected(401, "stale_signature",
                       f"signature timestamp {stamp} is {int(skew)} s from now, outside the {window} s replay window")
    signed = stamps[0].encode() + b"." + body
    expected = [hmac.new(secret, signed, hashlib.sha256).hexdigest() for secret in secrets]
    if not any(hmac.compare_digest(e.encode(), g.strip().lower().encode()) for e in expected for g in given):
        raise Rejected(401, "bad_signature", f"{SIGNATURE_HEADER} does not match the body")


#: How an alert was authenticated (package docstring: which routes take each, which may contain).
Credential = Literal["hmac", "eventbridge", "bearer", "github"]
#: The routes AWS's events arrive on through EventBridge (the rules of `keyresponse/readiness/routes.py`, and a
#: hand-made Security Hub rule): the only ones the EventBridge connection's token is accepted on.
AWS_SOURCES: frozenset[Source] = frozenset({"guardduty", "health", "securityhub", "cloudtrail"})
#: The credentials whose alerts may trigger automatic containment (the receiver's first response and the
#: flow's early containment): a signature with a timestamp, and AWS's own delivery.
CONTAINING_CREDENTIALS: frozenset[Credential] = frozenset({"hmac", "eventbridge"})


def _token(secret: SecretStr | None) -> bytes | None:
    return secret.get_secret_value().strip().encode() if secret is not None else None


def authenticate(request: Request, body: bytes, settings: WebhookSettings, source: Source) -> Credential:
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is not None:
        _check_signature(signature, body, settings.hmac_secrets(), settings.replay_window_seconds)
        return "hmac"
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Rejected(401, "bad_token", "Authorization must be 'Bearer <token>'",
                           headers={"WWW-Authenticate": "Bearer"})
        given = token.strip().encode()
        eventbridge, bearer = _token(settings.eventbridge_token), _token(settings.bearer_token)
        is_eventbridge = eventbridge is not None and hmac.compare_digest(given, eventbridge)
        is_bearer = bearer is not None and hmac.compare_digest(given, bearer)
        if is_eventbridge and source in AWS_SOURCES:
            return "eventbridge"
        if is_eventbridge:
            raise Rejected(401, "bad_token", "the EventBridge connection's token is accepted only on "
                           f"/alerts/{{{','.join(sorted(AWS_SOURCES))}}}", headers={"WWW-Authenticate": "Bearer"})
        if is_bearer:
            return "bearer"
        raise Rejected(401, "bad_token", "bearer token is not valid", headers={"WWW-Authenticate": "Bearer"})
    raise Rejected(401, "missing_credentials",
                   f"send {SIGNATURE_HEADER}: t=<unix>,v1=<hmac> or Authorization: Bearer <token>",
                   headers={"WWW-Authenticate": "Bearer"})


def authenticate_github(request: Request, body: bytes, settings: WebhookSettings) -> None:
    header = request.headers.get(GITHUB_SIGNATURE_HEADER)
    if header is None:
        raise Rejected(401, "missing_credentials", f"{GITHUB_SIGNATURE_HEADER} is missing")
    secrets = settings.github_secrets()
    if not header.startswith("sha256=") or not secrets:
        raise Rejected(401, "bad_signature", f"{GITHUB_SIGNATURE_HEADER} must be sha256=<hex hmac-sha256 of the body>")
    given = header.removeprefix("sha256=").strip().lower().encode()
    if not any(hmac.compare_digest(hmac.new(s, body, hashlib.sha256).hexdigest().encode(), given) for s in secrets):
        raise Rejected(401, "bad_signature", f"{GITHUB_SIGNATURE_HEADER} does not match the body")
