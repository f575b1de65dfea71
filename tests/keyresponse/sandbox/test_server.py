from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from keyresponse.errors import SandboxError
from keyresponse.sandbox import MotoSandbox


def test_leaves_no_process_when_context_exits() -> None:
    with MotoSandbox() as box:
        pid = box.pid
        assert pid is not None and os.path.exists(f"/proc/{pid}")
        assert box.endpoint.startswith("http://127.0.0.1:")
    assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_loads_aws_managed_policies(sandbox: MotoSandbox) -> None:
    iam = boto3.client("iam")
    policy = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3")["Policy"]
    assert policy["PolicyName"] == "AWSCompromisedKeyQuarantineV3"


def test_injects_throttling_on_the_named_service_only(sandbox: MotoSandbox) -> None:
    iam = boto3.client("iam", config=boto3.session.Config(retries={"max_attempts": 1, "mode": "standard"}))
    s3 = boto3.client("s3", config=boto3.session.Config(retries={"max_attempts": 1, "mode": "standard"}))
    sandbox.inject_faults(service="iam", throttle_rate=1.0)
    try:
        with pytest.raises(ClientError) as caught:
            iam.list_users()
        assert caught.value.response["Error"]["Code"] == "Throttling"
        s3.list_buckets()
        counters = sandbox.call_extension("GET", "faults")
        assert counters["injected"]["iam"] >= 1 and "s3" not in counters["injected"]
    finally:
        sandbox.inject_faults()
    iam.list_users()


def test_backdate_rejects_an_unknown_user_with_a_clear_error(sandbox: MotoSandbox) -> None:
    with pytest.raises(SandboxError, match="400"):
        sandbox.backdate(user_name="nobody-by-this-name", created_at="2020-01-01T00:00:00Z")
