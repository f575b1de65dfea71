"""Task retries on transient failures only (keyresponse/retry.py), found through our own wrapping.

The flow test counts the calls moto received: a throttled STS is asked once per try (boto3's own
retries set to 1 here), a permanent error once in all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.parsers import ResponseParserError
from prefect import flow

from keyresponse.errors import AwsCallError, MissingPermission
from keyresponse.retry import is_throttling, is_transient
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import get_settings


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetCallerIdentity")


def _wrapped(inner: BaseException) -> AwsCallError:
    try:
        try:
            raise inner
        except Exception as exc:
            raise AwsCallError("reading the caller identity: ...") from exc
    except AwsCallError as outer:
        return outer


@pytest.mark.parametrize(("error", "transient"), [
    (_client_error("Throttling"), True),
    (_wrapped(_client_error("ThrottlingException")), True),  # the wrapped case that never retried
    (_wrapped(_client_error("ServiceUnavailable", 503)), True),
    (_client_error("Whatever", 502), True),
    (_wrapped(EndpointConnectionError(endpoint_url="https://sts.amazonaws.com")), True),
    # a 503 page of a proxy, not AWS's XML: botocore cannot parse it (the first response met it in moto)
    (_wrapped(ResponseParserError("Unable to parse response (syntax error), invalid XML received")), True),
    (_wrapped(_client_error("AccessDenied", 403)), False),
    (MissingPermission("iam:ListUsers"), False),
    (_client_error("NoSuchEntity", 404), False),
    (ValueError("a bug"), False),
])
def test_transient_failures_are_told_from_permanent_ones_through_the_cause_chain(
        error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_throttling_is_a_subset_of_transient() -> None:
    assert is_throttling(_wrapped(_client_error("Throttling"))) and not is_throttling(_client_error("InternalError", 500))


@pytest.fixture
def one_boto_attempt(sandbox: MotoSandbox) -> Iterator[MotoSandbox]:
    saved = os.environ.get("KEYRESPONSE_AWS_MAX_ATTEMPTS")
    os.environ["KEYRESPONSE_AWS_MAX_ATTEMPTS"] = "1"
    get_settings.cache_clear()
    sandbox.inject_faults()
    try:
        yield sandbox
    finally:
        sandbox.inject_faults()
        if saved is None:
            os.environ.pop("KEYRESPONSE_AWS_MAX_ATTEMPTS", None)
        else:
            os.environ["KEYRESPONSE_AWS_MAX_ATTEMPTS"] = saved
        get_settings.cache_clear()


def _calls(box: MotoSandbox, service: str) -> int:
    return int(box.call_extension("GET", "faults")["calls"].get(service, 0))


def test_a_throttled_task_is_retried_and_a_permanent_error_fails_at_once(
        prefect_server: str, one_boto_attempt: MotoSandbox) -> None:
    from tasks.credential_report import list_scan_targets

    box = one_boto_attempt
    fast = list_scan_targets.with_options(retry_delay_seconds=0)

    @flow(name="retry-under-test")
    def scan_targets(organization: bool) -> tuple[bool, str]:
        state = fast(organization=organization, return_state=True)
        return state.is_failed(), str(state.message)

    from keyresponse import aws

    box.inject_faults(service="sts", throttle_rate=1.0)
    with pytest.raises(ClientError):
        aws.client("sts").get_caller_identity()  # one try, with boto3's own attempts
    per_try = _calls(box, "sts")
    failed, message = scan_targets(False)
    assert failed and "Throttling" in message
    assert _calls(box, "sts") == per_try * (1 + 1 + 3)  # that call, then list_scan_targets' try and 3 retries
    box.inject_faults()
    box.inject_faults(service="sts", deny=True)  # AccessDenied: a permanent error
    failed, message = scan_targets(False)
    assert failed and "access denied" in message, message
    assert _calls(box, "sts") == 1  # one call: no retry by boto3, none by the task
