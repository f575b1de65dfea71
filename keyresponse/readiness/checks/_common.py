"""What the checks share: reading a paginated list, an error's code, and the check of a read that failed."""

from __future__ import annotations

from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from keyresponse.readiness.model import Check


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def unreadable(check_id: str, title: str, account_id: str, region: str | None, exc: Exception, fix: str) -> Check:
    """A read that failed (AccessDenied, an API the environment lacks): not verifiable, never passing."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        why = f"{error.get('Code', '?')}: {error.get('Message', '')}".strip()
    else:
        why = str(exc)
    return Check(id=check_id, title=title, account_id=account_id, region=region, status="not_verifiable",
                 evidence=f"not verifiable here: the read failed ({why[:300]})", fix=fix)


def paginate(client: BaseClient, method: str, key: str, **kwargs: object) -> list[Any]:
    if client.can_paginate(method):
        return [item for page in client.get_paginator(method).paginate(**kwargs) for item in page.get(key, [])]
    return list(getattr(client, method)(**kwargs).get(key, []))
