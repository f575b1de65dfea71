"""The one place that builds boto3 clients.

Production uses the default credential chain. The sandbox is reached through the standard
`AWS_ENDPOINT_URL` variable (or an explicit `endpoint_url`), so the same code serves both worlds.

Every session of a process shares one botocore data loader: a session of its own would read and
parse each service's model files again for its first client (0.1 CPU-s for IAM or S3, against 0.01 s
with the shared loader). A response builds dozens of clients, in sessions per account and per
assumed role, and each phase is a process of its own.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Protocol

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

from keyresponse.settings import get_settings


class ClientFactory(Protocol):
    """What makes the boto3 client of a service in a region: `clients("iam")`, `clients("cloudtrail",
    "eu-west-1")` (`tasks.actions.Clients`, a readiness scope's clients). The client it returns is
    untyped: its service is a run-time string, and most services have no stubs installed."""

    def __call__(self, service: str, region: str | None = None, /) -> Any: ...


def client_config(max_attempts: int | None = None) -> Config:
    """Retries on throttling and 5xx with exponential backoff and jitter (adaptive mode also rate-limits
    the client once it has been throttled), and sane timeouts."""
    settings = get_settings()
    attempts = max_attempts if max_attempts is not None else settings.aws_max_attempts
    return Config(
        retries={"max_attempts": attempts, "mode": settings.aws_retry_mode},
        connect_timeout=5,
        read_timeout=30,
        user_agent_extra="keyresponse",
    )


#: Few tries and short timeouts: validating an alert's key must answer within the receiver's seconds.
QUICK = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=3, read_timeout=15)


def session(
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    region: str | None = None,
) -> boto3.Session:
    """A boto3 session; explicit credentials win over the default chain."""
    core = botocore.session.get_session()
    core.register_component("data_loader", shared_loader())
    return boto3.Session(
        botocore_session=core,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region or os.environ.get("AWS_REGION") or get_settings().region,
    )


@functools.cache
def shared_loader() -> botocore.loaders.Loader:
    """The data loader of the first session, with its search path (`AWS_DATA_PATH`), for every session."""
    loader: botocore.loaders.Loader = botocore.session.get_session().get_component("data_loader")
    return loader


def client(
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    boto_session: boto3.Session | None = None,
    max_attempts: int | None = None,
    config: Config | None = None,
) -> Any:
    """A boto3 client for `service`: the one place clients are made (`tests/test_one_home.py`).
    `endpoint_url` defaults to what boto3 reads from the environment; `config` replaces the retry and
    timeout settings (`QUICK`, for the seconds before the first response)."""
    sess = boto_session or session(region=region)
    kwargs: dict[str, Any] = {"config": config or client_config(max_attempts)}
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    # boto3-stubs type each service name as a Literal and have no overload for a name known only at run time
    return sess.client(service, **kwargs)  # type: ignore[call-overload]


def session_for_account(account_id: str | None, base: boto3.Session | None = None, *,
                        role_name: str | None = None) -> boto3.Session:
    """A session acting in `account_id`: `base` (default: the default one) for its own account, or the
    response role (`role_name`, default `settings.response_role_name`) assumed from it in a member
    account of the Organization."""
    base = base or session()
    if not account_id:
        return base
    sts = client("sts", boto_session=base, max_attempts=3)
    own = sts.get_caller_identity()["Account"]
    if account_id == own:
        return base
    role = f"arn:aws:iam::{account_id}:role/{role_name or get_settings().response_role_name}"
    creds = sts.assume_role(RoleArn=role, RoleSessionName="keyresponse")["Credentials"]
    return session(access_key_id=creds["AccessKeyId"], secret_access_key=creds["SecretAccessKey"],
                   session_token=creds["SessionToken"], region=base.region_name)
