"""Which failures are worth a Prefect task retry: transient ones only.

    @task(retries=2, retry_delay_seconds=exponential_backoff(2), retry_jitter_factor=0.5,
          retry_condition_fn=retry_on_transient)

boto3 already retries throttling and 5xx with backoff (`aws_max_attempts`, adaptive mode); a task
retry is the second line, for when AWS stays busy past that. It retries on throttling, 5xx and
connection errors, found anywhere in the exception's cause chain (our code wraps botocore errors
in `AwsCallError` with `raise … from exc`: a check of the outer exception alone never retried).
A permanent error (AccessDenied, NoSuchEntity, a validation error, a bug) fails the task at once,
and its state message carries the AWS error code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
                              "SlowDown", "RequestThrottled", "Rate exceeded", "ProvisionedThroughputExceededException"})
SERVER_CODES = frozenset({"ServiceUnavailable", "InternalError", "InternalFailure", "InternalServerError",
                          "ServiceUnavailableException", "InternalServerException"})
CONNECTION_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError,
                     ConnectionError, TimeoutError)


def causes(exc: BaseException | None) -> list[BaseException]:
    """The exception and what caused it, outermost first (bounded: a cycle cannot loop)."""
    out: list[BaseException] = []
    while exc is not None and len(out) < 10 and all(exc is not seen for seen in out):
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def is_throttling(exc: BaseException | None) -> bool:
    return any(isinstance(e, ClientError) and e.response.get("Error", {}).get("Code") in THROTTLING_CODES
               for e in causes(exc))


def is_transient(exc: BaseException | None) -> bool:
    """Throttling, a 5xx, or a connection that failed or timed out, anywhere in the cause chain; also a
    response botocore could not parse (a 5xx page of a proxy or load balancer rather than AWS's XML:
    botocore says "further retries may succeed")."""
    from botocore.parsers import ResponseParserError

    for e in causes(exc):
        if isinstance(e, ResponseParserError):
            return True
        if isinstance(e, ClientError):
            code = e.response.get("Error", {}).get("Code")
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in THROTTLING_CODES or code in SERVER_CODES or status >= 500:
                return True
        elif isinstance(e, CONNECTION_ERRORS):
            return True
    return False


def retry_on_transient(task: object, task_run: object, state: State[object]) -> bool:
    """Prefect `retry_condition_fn`: retry a task only when it failed on a transient error."""
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by `result()`
        return is_transient(exc)
    return False
