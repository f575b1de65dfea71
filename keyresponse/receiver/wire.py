"""What the receiver reads off the wire before it knows what an alert is: the body, under its size limit,
parsed as JSON under a depth limit, and the error answer every refusal is (`Rejected`, `error_response`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import JsonValue

#: A Content-Length the receiver reads: ASCII digits, at most 19 (any larger is over every limit anyway).
_LENGTH_RE = re.compile(r"[0-9]{1,19}", re.ASCII)


class Rejected(Exception):
    """An HTTP error answer: `{"error": code, "detail": ...}`."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None,
                 extra: dict[str, JsonValue] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.headers = headers or {}
        self.extra = extra or {}


def error_response(status: int, error: str, detail: JsonValue, headers: dict[str, str] | None = None,
                   extra: Mapping[str, JsonValue] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **(extra or {})}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _LENGTH_RE.fullmatch(declared):
            raise Rejected(400, "bad_content_length", f"Content-Length {declared[:20]!r} is not a number of at "
                           "most 19 digits")
        if int(declared) > limit:
            raise Rejected(413, "body_too_large", f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "body_too_large", f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> dict[str, JsonValue]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "malformed_json", "body is not UTF-8 text") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Rejected(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Rejected(400, "malformed_json", f"body nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "malformed_json", f"body must be a JSON object, got {type(payload).__name__}")
    if _depth(payload) > MAX_JSON_DEPTH:
        raise Rejected(400, "malformed_json", f"body nests deeper than {MAX_JSON_DEPTH} levels")
    return payload


#: No alert format nests anywhere near this deep; deeper bodies are hostile.
MAX_JSON_DEPTH = 64


def _depth(value: Any, limit: int = MAX_JSON_DEPTH + 1) -> int:
    """Nesting depth of a JSON value, counted iteratively and capped at `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level >= limit:
            return level
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest

