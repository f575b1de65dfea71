"""Shared fixtures: one moto server and one seeded account per test session.

Tests that change AWS state make their own principals with unique names (see `unique_name`),
so the shared seeded account stays as the seed left it for the read-only tests.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount, seed_account

_counter = itertools.count()


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
