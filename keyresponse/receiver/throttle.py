"""The per-address rate of the routes that take no credentials: past it, 429 (the alert routes are left alone)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keyresponse.receiver.wire import error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp


class TokenBuckets:
    """A token bucket per client address: `burst` requests at once, then `rate` a second.

    In the receiver's process only (one process serves the receiver), and bounded: past `max_clients`
    addresses, the idle ones (whose bucket has filled up again) are forgotten, then the longest unseen.
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_clients, self.clock = rate, float(burst), max_clients, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, when they were counted)

    def take(self, client: str) -> bool:
        """Take one token from `client`'s bucket; False when it is empty (the request is refused)."""
        now = self.clock()
        tokens, then = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        allowed = tokens >= 1
        self._buckets[client] = (tokens - 1 if allowed else tokens, now)  # re-inserted: newest last
        if len(self._buckets) > self.max_clients:
            self._forget(now)
        return allowed

    def _forget(self, now: float) -> None:
        for client, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self.rate >= self.burst:
                del self._buckets[client]
        for client in list(self._buckets)[:max(0, len(self._buckets) - self.max_clients // 2)]:
            del self._buckets[client]  # the longest unseen first (insertion order)


class Throttle:
    """ASGI middleware: the routes that take no credentials answer 429 to a client address over its rate.

    The alert routes are left alone: each request there is authenticated (an HMAC or a token compared in
    constant time over at most `max_body_bytes`), and EventBridge delivers from addresses AWS shares. The
    client address is the socket's peer, or what a trusted proxy says in X-Forwarded-For (uvicorn's
    `--forwarded-allow-ips`, 127.0.0.1 by default).
    """

    def __init__(self, app: ASGIApp, buckets: TokenBuckets, authenticated: frozenset[str]) -> None:
        self.app, self.buckets, self.authenticated = app, buckets, authenticated

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") not in self.authenticated:
            client = scope.get("client")
            if not self.buckets.take(str(client[0]) if client else "unknown"):
                retry = max(1, int(1 / self.buckets.rate + 0.999))
                answer = error_response(429, "rate_limited", f"over {self.buckets.rate:g} requests a second (burst "
                                        f"{self.buckets.burst:g}) from this address to a route that takes no "
                                        "credentials", headers={"Retry-After": str(retry)})
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
