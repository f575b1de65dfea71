"""The review's low findings: input that crashed the receiver before authentication, a receiver that started
with an empty token, a rename not made durable, and digits of other scripts taken for an account id.

The receiver runs under uvicorn on 127.0.0.1 and is spoken to over HTTP; the Prefect side is a `Launcher`
that records its calls. `write_atomic` is watched through Python's audit hooks (`sys.addaudithook`).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from local_servers import Receiver, RecordingLauncher
from typer.testing import CliRunner

from keyresponse.errors import ConfigurationError, InputError
from keyresponse.files import write_atomic
from keyresponse.guardrails import parse_principal
from keyresponse.intel.attribution import external_accounts
from keyresponse.keys import ACCESS_KEY_ID_IN_TEXT_RE
from keyresponse.queries import render_ddl
from keyresponse.receiver.app import create_app
from keyresponse.receiver.auth import sign
from keyresponse.receiver.config import WebhookSettings

SECRET = "hardening-hmac-secret-0123456789"
#: Twelve digits of other scripts: `\d` (and `str.isdigit`) take them, an AWS account id never has them.
ARABIC_INDIC = "١٢٣٤٥٦٧٨٩٠١٢"
FULLWIDTH = "１２３４５６７８９０１２"


@dataclass
class Running:
    url: str
    launcher: RecordingLauncher
    http: httpx.Client


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    launcher = RecordingLauncher()
    config = WebhookSettings(secret=SECRET, spool=tmp_path_factory.mktemp("spool"))
    with Receiver(create_app(config, launcher)) as receiver, httpx.Client(timeout=10) as http:
        yield Running(receiver.url, launcher, http)


# --- pre-authentication 500s ---------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", [
    "²".encode("latin-1"),           # str.isdigit() is true, int() refuses it
    "³¹".encode("latin-1"),
    "١٢٣".encode(),                  # read as latin-1 by the server: not digits at all
    b"1" * 5000,                     # int() refuses more than 4,300 digits
    b"9" * 400,                      # int() takes it; time.time() - it overflows a float
    b"1" * 13,                       # a 13-digit stamp: more than any Unix time in seconds
])
def test_a_malformed_signature_timestamp_is_401_never_500(running: Running, stamp: bytes) -> None:
    body = b'{"access_key_id": "AKIAHARDEN0000000001", "reason": "pre-auth"}'
    header = b"t=" + stamp + b",v1=" + b"0" * 64
    response = running.http.post(f"{running.url}/alerts/generic", content=body,
                                 headers=[(b"X-Keyresponse-Signature", header)])
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "bad_signature" and "malformed" in response.json()["detail"]
    assert running.launcher.calls == []


# --- a receiver that would refuse everything must not start ------------------------------------------------


@pytest.mark.parametrize("empty", ["", "   "])
def test_the_receiver_refuses_to_start_with_an_empty_bearer_token(
        empty: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="KEYRESPONSE_WEBHOOK_BEARER_TOKEN is set but empty"):
        create_app(WebhookSettings(bearer_token=empty, spool=tmp_path), RecordingLauncher())
    with pytest.raises(ConfigurationError, match="KEYRESPONSE_WEBHOOK_BEARER_TOKEN is set but empty"):
        create_app(WebhookSettings(secret=SECRET, bearer_token=empty, spool=tmp_path), RecordingLauncher())

    from keyresponse.cli import app

    for name in ("SECRET", "SECRETS", "EVENTBRIDGE_TOKEN", "GITHUB_SECRET"):
        monkeypatch.delenv(f"KEYRESPONSE_WEBHOOK_{name}", raising=False)
    result = CliRunner().invoke(app, ["serve-webhook", "--port", "1"],
                                env={"KEYRESPONSE_WEBHOOK_BEARER_TOKEN": empty,
                                     "KEYRESPONSE_WEBHOOK_SPOOL": str(tmp_path)})
    assert result.exit_code != 0
    assert "KEYRESPONSE_WEBHOOK_BEARER_TOKEN is set but empty" in result.output, result.output


# --- write_atomic makes the new name durable -------------------------------------------------------------


class FileEvents:
    """`open`, `os.rename` and `os.link` audit events under one folder, in order (a hook for the process)."""

    installed: ClassVar[bool] = False
    root: ClassVar[str | None] = None
    seen: ClassVar[list[tuple[str, str, int]]] = []

    @classmethod
    def watch(cls, folder: Path) -> type[FileEvents]:
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True
        cls.root, cls.seen = str(folder), []
        return cls

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if cls.root is None or event not in ("open", "os.rename", "os.link") or not args:
            return
        if not isinstance(args[0], str | bytes | os.PathLike) or not os.fsdecode(args[0]).startswith(cls.root):
            return
        flags = args[2] if event == "open" and len(args) > 2 and isinstance(args[2], int) else 0
        cls.seen.append((event, os.fsdecode(args[0]).rstrip("/"), flags))


@pytest.mark.parametrize("exclusive", [False, True])
def test_write_atomic_makes_the_new_name_durable_by_fsyncing_its_folder(tmp_path: Path, exclusive: bool) -> None:
    folder = tmp_path / "spool" / "open"
    events = FileEvents.watch(tmp_path)
    try:
        assert write_atomic(folder / "entry.json", b'{"subject": "key:x"}', exclusive=exclusive)
    finally:
        FileEvents.root = None
    names = [(event, Path(path).name, bool(flags & os.O_DIRECTORY)) for event, path, flags in events.seen]
    moved = next(i for i, (event, _, _) in enumerate(names) if event in ("os.rename", "os.link"))
    assert ("open", "open", True) in names[moved + 1:], names  # the folder, opened to be fsynced, after the move
    assert (folder / "entry.json").read_bytes() == b'{"subject": "key:x"}'


# --- account ids are ASCII digits ------------------------------------------------------------------------


@pytest.mark.parametrize("account", [ARABIC_INDIC, FULLWIDTH])
def test_an_account_id_in_other_digits_is_refused_by_the_receiver(running: Running, account: str) -> None:
    for route, payload in [
        ("generic", {"access_key_id": "AKIAHARDEN0000000002", "reason": "digits", "account_id": account}),
        ("guardduty", {"detail-type": "GuardDuty Finding", "source": "aws.guardduty", "account": account,
                       "detail": {"accountId": account, "id": uuid.uuid4().hex, "severity": 8,
                                  "type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller",
                                  "createdAt": "2026-11-27T19:03:13Z",
                                  "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                                      "accessKeyId": "AKIAHARDEN0000000003", "userName": "alice"}}}}),
    ]:
        body = json.dumps(payload, ensure_ascii=False).encode()
        response = running.http.post(f"{running.url}/alerts/{route}", content=body,
                                     headers={"X-Keyresponse-Signature": sign(body, SECRET)})
        assert response.status_code == 422, response.text
        assert "12-digit AWS account id" in response.json()["detail"]
    assert running.launcher.calls == []


@pytest.mark.parametrize("account", [ARABIC_INDIC, FULLWIDTH])
def test_account_and_key_ids_in_other_digits_are_refused_by_every_validator(account: str) -> None:
    assert parse_principal(f"arn:aws:iam::{account}:user/alice").account_id is None
    assert parse_principal("arn:aws:iam::123456789012:user/alice").account_id == "123456789012"
    with pytest.raises(InputError, match="accounts"):
        render_ddl(bucket="acme-logs", accounts=[account], regions=["us-east-1"])
    with pytest.raises(InputError, match="accounts"):
        render_ddl(bucket="acme-logs", accounts=["123456789012\n"], regions=["us-east-1"])
    events = [{"principal_arn": "arn:aws:iam::123456789012:user/alice", "event_id": "e1", "event_time": "t",
               "event_name": "PutRolePolicy",
               "request_parameters": json.dumps({"AWS": f"arn:aws:iam::{account}:root"}, ensure_ascii=False)}]
    assert external_accounts(events) == []
    assert ACCESS_KEY_ID_IN_TEXT_RE.search("key AKIA" + "١" * 16) is None
