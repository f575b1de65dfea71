"""Property-based fuzz of every route of the alert receiver, over HTTP, with unauthenticated input.

The receiver is `keyresponse serve-webhook` itself, in a process of its own on 127.0.0.1, wired as in
production: a `PrefectLauncher` (PREFECT_API_URL names an address that refuses connections: nothing
here may launch, and an attempt would show in the counters) and a real first responder (on the
session's moto server). Every route gets at least 2,000 generated requests: random and near-valid
bodies (valid alerts about well-formed keys among them), forged, stale, truncated and misplaced
credentials (the EventBridge token on /alerts/generic, GitHub's secret as the HMAC, a signature over
another body, digits of other scripts or thousands of digits in the timestamp), odd methods and
content types.

Hypothesis draws a small recipe per request (a few choices and a seed) and the request is built from
it, so generating costs little and a failure names a recipe that rebuilds the same request; ten
requests of a recipe list are sent at once, through keep-alive connections, so the client and the
receiver each keep a core busy.

Invariants: no answer is a 5xx; no request without valid credentials is answered 2xx on an alert
route; and at the end nothing was spooled, launched or contained: the receiver's counters
(`/healthz`) are zero, the spool holds no file and no first-response file exists.
"""

from __future__ import annotations

import json
import os
import random
import socket
import string
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from keyresponse.prefect_server import free_port
from keyresponse.receiver.auth import sign, sign_github
from keyresponse.sandbox import MotoSandbox

pytestmark = pytest.mark.slow  # 14,000 requests to one receiver

HMAC_SECRET = "fuzz-hmac-secret-0123456789abcdef"
EVENTBRIDGE_TOKEN = "fuzz-eventbridge-token-0123456789"
BEARER_TOKEN = "fuzz-static-bearer-token-012345678"
GITHUB_SECRET = "fuzz-github-secret-0123456789abcd"
MAX_BODY = 4096
CASES = 2000  # requests per route
BATCH = 10  # requests per generated example, sent at once
ALERT_ROUTES = ["guardduty", "health", "securityhub", "cloudtrail", "generic", "github"]
ROUTES = [*(f"/alerts/{r}" for r in ALERT_ROUTES), "/healthz"]
FUZZ = settings(max_examples=CASES // BATCH, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck))

#: Answers by route and status, printed at the end (figures for whoever reads the log).
SEEN: Counter[str] = Counter()


@dataclass
class Target:
    url: str
    spool: Path
    home: Path
    pool: ThreadPoolExecutor
    local: threading.local

    def client(self) -> httpx.Client:
        """This thread's keep-alive client."""
        if not hasattr(self.local, "http"):
            self.local.http = httpx.Client(base_url=self.url, timeout=30)
        http: httpx.Client = self.local.http
        return http


@pytest.fixture(scope="module")
def target(sandbox: MotoSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    home = tmp_path_factory.mktemp("home")
    refusing = socket.socket()  # bound, never listening: connections are refused, and nobody else gets the port
    refusing.bind(("127.0.0.1", 0))
    nowhere = f"http://127.0.0.1:{refusing.getsockname()[1]}"
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}, **sandbox.env(),
           "KEYRESPONSE_HOME": str(home), "KEYRESPONSE_WEBHOOK_SPOOL": str(home / "spool"),
           "KEYRESPONSE_WEBHOOK_SECRET": HMAC_SECRET, "KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN": EVENTBRIDGE_TOKEN,
           "KEYRESPONSE_WEBHOOK_BEARER_TOKEN": BEARER_TOKEN, "KEYRESPONSE_WEBHOOK_GITHUB_SECRET": GITHUB_SECRET,
           "KEYRESPONSE_WEBHOOK_GITHUB_API_URL": nowhere, "KEYRESPONSE_WEBHOOK_MAX_BODY_BYTES": str(MAX_BODY),
           "KEYRESPONSE_WEBHOOK_UNAUTHENTICATED_BURST": "1000000000",  # the handlers, not the limiter, are fuzzed
           "KEYRESPONSE_WEBHOOK_UNAUTHENTICATED_RATE_PER_SECOND": "1000000000",
           "KEYRESPONSE_WEBHOOK_RETRY_AFTER_SECONDS": "1", "PREFECT_API_URL": f"{nowhere}/api"}
    log = open(home / "receiver.log", "wb")  # noqa: SIM115 - the child writes to it until it stops
    child = subprocess.Popen([sys.executable, "-m", "keyresponse", "serve-webhook", "--port", str(port),
                              "--log-level", "warning"], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while not _answers(f"{url}/healthz"):
            assert child.poll() is None, (home / "receiver.log").read_text()[-3000:]
            assert time.monotonic() - started < 60, "the receiver did not start within 60 s"
            time.sleep(0.1)
        with ThreadPoolExecutor(max_workers=BATCH, thread_name_prefix="fuzz") as pool:
            yield Target(url, home / "spool", home, pool, threading.local())
    finally:
        child.terminate()
        child.wait(20)
        log.close()
        refusing.close()
    assert "Traceback" not in (home / "receiver.log").read_text(), (home / "receiver.log").read_text()[-3000:]
    print(f"\nreceiver fuzz: {sum(SEEN.values())} requests in {time.monotonic() - started:.1f} s: "
          f"{dict(sorted(SEEN.items()))}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --- requests an unauthenticated sender can make, built from a recipe ------------------------------------

BODIES = ["alert", "alert", "alert-of-another-route", "json", "bytes", "big", "empty", "nested"]
CREDENTIALS = [
    "none", "random-signature", "wrong-secret", "github-secret-as-hmac", "other-body", "stale", "future",
    "odd-digits", "huge-stamp", "truncated", "random-bearer", "wrong-token", "eventbridge-token-off-its-routes",
    "scheme-only", "github-forged", "hmac-as-github", "github-over-other-body", "latin1-junk", "two-credentials"]
CONTENT_TYPES = [b"application/json", b"text/plain", b"", b"application/x-www-form-urlencoded"]
PRINTABLE = string.printable[:95]  # space to tilde, as a header allows
LATIN1 = [chr(c) for c in range(0x20, 0x100) if c != 0x7F]


@dataclass(frozen=True)
class Recipe:
    body: int
    credential: int
    method: int
    content_type: int
    seed: int


recipes = st.builds(Recipe, st.integers(0, len(BODIES) - 1), st.integers(0, len(CREDENTIALS) - 1),
                    st.integers(0, 11), st.integers(0, len(CONTENT_TYPES) - 1), st.integers(0, 2**32 - 1))


def alert_body(route: str, rng: random.Random) -> dict[str, Any]:
    """A valid alert of `route` about a well-formed key: only its credentials are missing."""
    key, when, uid = f"AKIAFUZZ{rng.randrange(10**12):012d}", "2026-11-27T19:03:13Z", uuid.UUID(int=rng.getrandbits(128))
    if route == "guardduty":
        return {"detail-type": "GuardDuty Finding", "source": "aws.guardduty", "account": "123456789012",
                "detail": {"accountId": "123456789012", "id": uid.hex, "severity": 9, "createdAt": when,
                           "type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller",
                           "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                               "accessKeyId": key, "userName": "alice", "userType": "IAMUser"}}}}
    if route == "health":
        return {"detail-type": "AWS Health Event", "source": "aws.health", "account": "123456789012",
                "detail": {"eventArn": f"arn:aws:health:global::event/RISK/X/{uid.hex}", "startTime": when,
                           "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED", "affectedEntities": [{"entityValue": key}]}}
    if route == "securityhub":
        return {"detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub",
                "detail": {"findings": [{"Id": uid.hex, "CreatedAt": when, "Severity": {"Label": "HIGH"},
                                         "Resources": [{"Type": "AwsIamAccessKey", "Id": key}]}]}}
    if route == "cloudtrail":
        return {"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam",
                "detail": {"eventSource": "iam.amazonaws.com", "eventName": "AttachUserPolicy", "eventID": uid.hex,
                           "eventTime": when, "recipientAccountId": "123456789012",
                           "requestParameters": {"userName": "alice",
                                                 "policyArn": "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"}}}
    if route == "github":
        return {"action": "created", "repository": {"full_name": "acme/app"},
                "alert": {"number": rng.randrange(10**6), "secret_type": "aws_access_key_id"}}
    return {"access_key_id": key, "reason": "fuzz", "alert_id": uid.hex}


def json_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-(2**70), 2**70)
    if kind == 3:
        return rng.uniform(-1e308, 1e308)
    if kind in (4, 5):
        return "".join(rng.choice(LATIN1) for _ in range(rng.randrange(20)))
    if kind == 6:
        return [json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {"".join(rng.choice(PRINTABLE) for _ in range(rng.randrange(8))): json_value(rng, depth + 1)
            for _ in range(rng.randrange(4))}


def text(rng: random.Random, alphabet: str | list[str], most: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(most)))


def build_body(kind: str, route: str, rng: random.Random) -> bytes:
    if kind == "alert":
        return json.dumps(alert_body(route, rng)).encode()
    if kind == "alert-of-another-route":
        return json.dumps(alert_body(rng.choice(ALERT_ROUTES), rng)).encode()
    if kind == "json":
        return json.dumps(json_value(rng)).encode()
    if kind == "bytes":
        return rng.randbytes(rng.randrange(300))
    if kind == "big":
        return b'{"access_key_id": "' + b"A" * (MAX_BODY + rng.randrange(1, 100)) + b'"}'
    if kind == "nested":
        depth = rng.randrange(50, 2000)
        return b"[" * depth + b"]" * depth
    return b""


def build_credentials(kind: str, route: str, body: bytes, rng: random.Random) -> list[tuple[bytes, bytes]]:
    """Headers that look like credentials but are not valid ones for this request."""
    now, zeros = int(time.time()), "0" * 64
    signature = b"X-Keyresponse-Signature"
    if kind == "none":
        return []
    if kind == "random-signature":
        return [(signature, text(rng, PRINTABLE, 80).encode())]
    if kind == "wrong-secret":
        return [(signature, sign(body, HMAC_SECRET + text(rng, "abc", 5) + "x").encode())]
    if kind == "github-secret-as-hmac":
        return [(signature, sign(body, GITHUB_SECRET).encode())]
    if kind == "other-body":
        return [(signature, sign(body + b" ", HMAC_SECRET).encode())]
    if kind == "stale":
        return [(signature, sign(body, HMAC_SECRET, now - rng.randrange(301, 10**9)).encode())]
    if kind == "future":
        return [(signature, sign(body, HMAC_SECRET, now + rng.randrange(301, 10**9)).encode())]
    if kind == "odd-digits":
        stamp = rng.choice(["²", "³¹", "¹" * 10, "٣٤", "１２３", "12\u0663"])
        return [(signature, f"t={stamp},v1={zeros}".encode())]
    if kind == "huge-stamp":
        return [(signature, b"t=" + b"9" * rng.randrange(13, 6000) + f",v1={zeros}".encode())]
    if kind == "truncated":
        return [(signature, sign(body, HMAC_SECRET)[:-rng.randrange(1, 64)].encode())]
    if kind == "random-bearer":
        return [(b"Authorization", ("Bearer " + text(rng, PRINTABLE, 60)).encode())]
    if kind == "wrong-token":
        token = rng.choice([BEARER_TOKEN + "x", EVENTBRIDGE_TOKEN[:-1], HMAC_SECRET, GITHUB_SECRET, BEARER_TOKEN.upper()])
        return [(b"Authorization", f"Bearer {token}".encode())]
    if kind == "eventbridge-token-off-its-routes":  # valid only on the AWS routes: elsewhere, or another scheme
        scheme = "Bearer" if route in ("generic", "github", "healthz") else rng.choice(["Basic", "Token"])
        return [(b"Authorization", f"{scheme} {EVENTBRIDGE_TOKEN}".encode())]
    if kind == "scheme-only":
        return [(b"Authorization", rng.choice([b"Bearer", b"Basic", b"Token x", b"bearer\tx"]))]
    if kind == "github-forged":
        return [(b"X-Hub-Signature-256", ("sha256=" + text(rng, PRINTABLE, 70)).encode()),
                (b"X-GitHub-Event", rng.choice([b"ping", b"secret_scanning_alert", b"push"]))]
    if kind == "hmac-as-github":
        return [(b"X-Hub-Signature-256", sign_github(body, HMAC_SECRET).encode()),
                (b"X-GitHub-Event", rng.choice([b"ping", b"secret_scanning_alert"]))]
    if kind == "github-over-other-body":
        return [(b"X-Hub-Signature-256", sign_github(body + b"\n", GITHUB_SECRET).encode()),
                (b"X-GitHub-Event", b"secret_scanning_alert")]
    if kind == "two-credentials":  # a forged signature beside a bearer token of the wrong route
        return [(signature, f"t={now},v1={zeros}".encode()), (b"Authorization", f"Bearer {EVENTBRIDGE_TOKEN}".encode())]
    return [(rng.choice([signature, b"Authorization", b"X-Hub-Signature-256"]), text(rng, LATIN1, 40).encode("latin-1"))]


def build(path: str, recipe: Recipe) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
    rng = random.Random(recipe.seed)
    route = path.rsplit("/", 1)[-1]
    body = build_body(BODIES[recipe.body], route if route in ALERT_ROUTES else "generic", rng)
    expected = "GET" if path == "/healthz" else "POST"
    method = [expected] * 8 + ["PUT", "DELETE", "PATCH", "GET" if expected == "POST" else "POST"]
    headers = [(name, value.strip() or b"x")  # HTTP allows no whitespace at either end of a value
               for name, value in build_credentials(CREDENTIALS[recipe.credential], route, body, rng)]
    if CONTENT_TYPES[recipe.content_type]:
        headers.append((b"Content-Type", CONTENT_TYPES[recipe.content_type]))
    return method[recipe.method], headers, body


def send(target: Target, path: str, recipe: Recipe) -> str | None:
    """One request; what is wrong with its answer, or None."""
    method, headers, body = build(path, recipe)
    response = target.client().request(method, path, headers=headers,
                                       content=body if method in ("POST", "PUT", "PATCH") else None)
    SEEN[f"{path} {response.status_code}"] += 1
    where = f"{recipe} -> {method} {path}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 500:
        return where
    if path != "/healthz" and method == "POST" and response.status_code not in (400, 401, 413):
        return where  # an alert route answered an unauthenticated request with something else than a refusal
    answer = response.json()
    if not isinstance(answer, dict) or not ("error" in answer or answer.get("status") == "ok"):
        return where
    return None


@pytest.mark.parametrize("path", ROUTES)
def test_unauthenticated_input_to_any_route_is_never_a_5xx_and_never_accepted(target: Target, path: str) -> None:
    before = sum(n for key, n in SEEN.items() if key.startswith(f"{path} "))

    @FUZZ
    @given(batch=st.lists(recipes, min_size=BATCH, max_size=BATCH))
    def run(batch: list[Recipe]) -> None:
        problems = [p for p in target.pool.map(lambda recipe: send(target, path, recipe), batch) if p]
        assert not problems, problems

    run()
    assert sum(n for key, n in SEEN.items() if key.startswith(f"{path} ")) - before >= CASES


def test_nothing_was_spooled_launched_or_contained(target: Target) -> None:
    """Runs after the fuzz (module order): the receiver's own counters, and what is on disk."""
    health = httpx.get(f"{target.url}/healthz", timeout=10).json()
    counts = {name: health[name] for name in ("accepted", "attached", "launch_attempts", "launched",
                                              "first_responses")}
    assert counts == dict.fromkeys(counts, 0), health
    assert health["pending"] in (0, None) and health["quarantined"] == 0, health
    assert [p for p in target.spool.rglob("*") if p.is_file()] == []
    assert not (target.home / "incidents").exists()
    assert sum(SEEN.values()) >= CASES * len(ROUTES)
