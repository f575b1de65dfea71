"""Shared fixtures: one moto server and one seeded account per test session.

Tests that change AWS state make their own principals with unique names (see `unique_name`),
so the shared seeded account stays as the seed left it for the read-only tests.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount, seed_account

_counter = itertools.count()

# Prefect reads its settings when it is first imported, so the API URL of the session's server is
# chosen here, before any test module imports prefect; the server itself starts only when a test
# asks for the `prefect_server` fixture. A server already named by PREFECT_API_URL is reused.
if not os.environ.get("PREFECT_API_URL"):
    from keyresponse.prefect_server import free_port

    _PREFECT_HOME = tempfile.mkdtemp(prefix="keyresponse-prefect-")
    os.environ["PREFECT_HOME"] = _PREFECT_HOME
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{free_port()}/api"
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[MotoSandbox]:
    """A moto server on 127.0.0.1 for the whole session; its AWS_* variables are exported."""
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                               "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN",
                                               "AWS_PROFILE")}
    with MotoSandbox() as box:
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(box.env())
        yield box
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def seeded(sandbox: MotoSandbox) -> SeededAccount:
    """The realistic account of `keyresponse.sandbox.seed`, created once per session."""
    return seed_account(sandbox)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A principal name no other test uses, for tests that change AWS state."""
    return f"t{next(_counter)}-{request.node.name[:40]}".replace("[", "-").replace("]", "")


def drain_prefect_workers() -> None:
    """Flush Prefect's background log and event senders while the server still answers."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=10)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One real Prefect server (SQLite) per test session, at the PREFECT_API_URL chosen above."""
    from keyresponse.prefect_server import PrefectServer

    api_url = os.environ["PREFECT_API_URL"]
    port = int(api_url.rsplit(":", 1)[1].split("/")[0])
    with PrefectServer(Path(os.environ["PREFECT_HOME"]), port=port) as server:
        yield server.api_url
        drain_prefect_workers()


class Played:
    """Every simulator scenario, played once in a sandbox of its own (the `played` fixture)."""

    def __init__(self, box: MotoSandbox, account: SeededAccount, results: dict[str, Any]) -> None:
        self.box, self.account, self.results = box, account, results


#: The end of the played scenarios' log span (fixed, so the logs are the same in every run).
PLAYED_END = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture(scope="session")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    """All eight scenarios with 1,500 events each, in one sandbox separate from `sandbox`, so the
    session's seeded account stays as the seed left it. Its moto server lives for the session."""
    from keyresponse.sandbox.scenarios import SCENARIOS
    from keyresponse.sandbox.simulate import run_simulation

    with MotoSandbox() as box:
        account = seed_account(box)
        results = {name: run_simulation(scenario=name, out=tmp_path_factory.mktemp(name), events=1500,
                                        sandbox=box, anchor=PLAYED_END, processes=1)
                   for name in SCENARIOS}
        yield Played(box, account, results)
