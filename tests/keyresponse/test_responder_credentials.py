"""Key validation works where responders run: as an assumed role, an ECS task role and an EC2
instance role, each with nothing in the environment but what that platform gives; with no
credentials at all it says what it looked at.

The container-credentials endpoint and the instance metadata service (IMDSv2) are small servers on
127.0.0.1 that hand out the credentials of a role assumed in the moto sandbox, as AWS's do; botocore
is pointed at them with its own settings (`AWS_CONTAINER_CREDENTIALS_FULL_URI`,
`AWS_EC2_METADATA_SERVICE_ENDPOINT`). Each validation runs in a fresh process, so boto3 resolves
credentials from scratch.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from local_servers import LocalHTTPServer, reply

from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount
from keyresponse.sandbox.server import admin_client

ROLE = "keyresponse-responder-role"


@pytest.fixture(scope="module")
def role_credentials(sandbox: MotoSandbox, seeded: SeededAccount) -> dict[str, str]:
    """Temporary credentials of a responder role, assumed with the seeded responder's key."""
    import boto3

    iam = admin_client(sandbox.endpoint, "iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"AWS": f"arn:aws:iam::{seeded.account_id}:root"}}]}
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    sts = boto3.client("sts", endpoint_url=sandbox.endpoint, region_name="us-east-1",
                       aws_access_key_id=seeded.responder.access_key_id,
                       aws_secret_access_key=seeded.responder.secret_access_key)
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{seeded.account_id}:role/{ROLE}",
                            RoleSessionName="responder")["Credentials"]
    return {"AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"], "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}


def _victim(sandbox: MotoSandbox, name: str) -> str:
    iam = admin_client(sandbox.endpoint, "iam")
    iam.create_user(UserName=name)
    return str(iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"])


def _validate(key: str, env: dict[str, str], home: Path) -> dict[str, Any]:
    """validate_key in a fresh process whose environment is `env` and nothing of ours."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update({"HOME": str(home), "AWS_CONFIG_FILE": str(home / "none"),
                 "AWS_SHARED_CREDENTIALS_FILE": str(home / "none")})  # no region either, as on an EC2 instance
    code = ("import json, sys; from keyresponse.validation import credential_source, validate_key; "
            "print(json.dumps({'source': credential_source(), 'facts': validate_key(sys.argv[1]).to_json()}))")
    done = subprocess.run([sys.executable, "-c", code, key], env={**base, **env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


class _Credentials(LocalHTTPServer):
    """The ECS/EKS container credentials endpoint, or the EC2 instance metadata service (IMDSv2)."""

    def __init__(self, credentials: dict[str, str]) -> None:
        self.credentials = credentials
        self.paths: list[str] = []
        super().__init__(_CredentialsHandler)


class _CredentialsHandler(BaseHTTPRequestHandler):
    server: _Credentials

    def do_PUT(self) -> None:  # IMDSv2: a session token first
        self.server.paths.append(f"PUT {self.path}")
        reply(self, 200, b"imds-token", "text/plain")

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        body = {**self.server.credentials, "Code": "Success", "Type": "AWS-HMAC"}
        if self.path == "/latest/meta-data/iam/security-credentials/":
            reply(self, 200, ROLE.encode(), "text/plain")
        elif self.path in ("/creds", f"/latest/meta-data/iam/security-credentials/{ROLE}"):
            reply(self, 200, json.dumps(body).encode())
        else:
            reply(self, 404, b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint(role_credentials: dict[str, str]) -> Iterator[_Credentials]:
    with _Credentials(role_credentials) as server:
        yield server


def _assert_validated(result: dict[str, Any], key: str, owner: str, account: str) -> None:
    facts = result["facts"]
    assert facts["gaps"] == [], facts["gaps"]
    assert facts["responder_arn"].startswith(f"arn:aws:sts::{account}:assumed-role/{ROLE}/"), facts
    assert (facts["owner"], facts["status"], facts["is_ours"]) == (owner, "Active", True)
    assert facts["access_key_id"] == key


def test_an_assumed_role_responder_validates_the_key(sandbox: MotoSandbox, seeded: SeededAccount,
                                                     role_credentials: dict[str, str], tmp_path: Path) -> None:
    key = _victim(sandbox, "victim-of-assumed-role")
    result = _validate(key, {"AWS_ENDPOINT_URL": sandbox.endpoint,
                             "AWS_ACCESS_KEY_ID": role_credentials["AccessKeyId"],
                             "AWS_SECRET_ACCESS_KEY": role_credentials["SecretAccessKey"],
                             "AWS_SESSION_TOKEN": role_credentials["Token"]}, tmp_path)
    assert result["source"] == "env"
    _assert_validated(result, key, "victim-of-assumed-role", seeded.account_id)


def test_an_ecs_task_role_validates_the_key(sandbox: MotoSandbox, seeded: SeededAccount, endpoint: _Credentials,
                                            tmp_path: Path) -> None:
    key = _victim(sandbox, "victim-of-task-role")
    result = _validate(key, {"AWS_ENDPOINT_URL": sandbox.endpoint,
                             "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint.url}/creds"}, tmp_path)
    assert result["source"] == "container-role"
    assert "/creds" in endpoint.paths
    _assert_validated(result, key, "victim-of-task-role", seeded.account_id)


def test_an_ec2_instance_role_validates_the_key(sandbox: MotoSandbox, seeded: SeededAccount, endpoint: _Credentials,
                                                tmp_path: Path) -> None:
    """Nothing in the environment names a credential (the old check gave up here without asking AWS)."""
    key = _victim(sandbox, "victim-of-instance-role")
    result = _validate(key, {"AWS_ENDPOINT_URL": sandbox.endpoint,
                             "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"{endpoint.url}/"}, tmp_path)
    assert result["source"] == "iam-role"
    assert "PUT /latest/api/token" in endpoint.paths
    _assert_validated(result, key, "victim-of-instance-role", seeded.account_id)


def test_no_credentials_anywhere_says_what_was_looked_at(tmp_path: Path) -> None:
    from keyresponse.prefect_server import free_port

    closed = f"http://127.0.0.1:{free_port()}/"  # nothing listens: no instance role either
    result = _validate("AKIAIOSFODNN7EXAMPLE", {"AWS_EC2_METADATA_SERVICE_ENDPOINT": closed}, tmp_path)
    assert result["source"] is None
    (gap,) = result["facts"]["gaps"]
    assert "no AWS credentials found" in gap and "instance roles" in gap
    assert result["facts"]["owner"] is None
