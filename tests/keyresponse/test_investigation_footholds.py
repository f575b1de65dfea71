"""What no query scoped to the credentials' own calls sees, in the investigation's output: the
investigated key's own creation event (whoever made it, a root session included), and console
sign-ins by the users the attacker created, with the policies attached named.

Stratus Red Team's real detonation logs, plus two records no public log holds, hand-written from
real ones (tests/footholds.py): a sign-in by the created user, a key made by a root session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from footholds import (
    ADMIN_ACCOUNT,
    ADMIN_USER,
    ADMIN_USER_KEY,
    CREATOR_KEY,
    ROOT_MADE_KEY,
    root_creates_key,
    sign_in_as,
)

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.layout import write_trail_files
from keyresponse.investigation import Window, investigate

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cloudtrail"
WINDOW = Window.parse("2024-07-01T00:00:00Z", "2024-09-01T00:00:00Z")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBEngine]:
    root = tmp_path_factory.mktemp("footholds")
    records = json.loads((FIXTURES / "stratus_red_team_detonation_logs.json").read_text())["Records"]
    extra = [sign_in_as(records, ADMIN_USER, ADMIN_ACCOUNT, "2024-08-01T13:40:00Z"),
             root_creates_key(records, ROOT_MADE_KEY)]
    write_trail_files([*records, *extra], root / "logs")
    with DuckDBEngine(root / "logs", cache_dir=root / "cache") as eng:
        yield eng


def test_a_sign_in_by_the_user_the_attacker_created_and_the_policy_by_name_are_persistence(
        engine: DuckDBEngine) -> None:
    persistence = investigate(engine, CREATOR_KEY, WINDOW).to_json()["persistence"]
    by = {(p["event_name"], p["resource"]): p for p in persistence}
    login = by[("ConsoleLogin", ADMIN_USER)]
    assert login["access_key_id"] is None and login["detail"] == "MFA used: No"
    assert by[("AttachUserPolicy", ADMIN_USER)]["detail"] == "AdministratorAccess"
    assert [p["event_time"] for p in persistence] == sorted(p["event_time"] for p in persistence)
    assert persistence[-1] is login  # 13:40, after the 13:33 CreateUser / AttachUserPolicy / CreateAccessKey


def test_the_investigated_keys_creation_is_found_whoever_made_it(engine: DuckDBEngine) -> None:
    for key, by, kind, user in ((ADMIN_USER_KEY, f"arn:aws:iam::{ADMIN_ACCOUNT}:user/christophe", "IAMUser", ADMIN_USER),
                                (ROOT_MADE_KEY, f"arn:aws:iam::{ADMIN_ACCOUNT}:root", "Root", "deploy-bot")):
        created = investigate(engine, key, WINDOW).to_json()["key_creation"]
        assert created is not None, key
        assert (created["access_key_id"], created["event_name"], created["created_by_arn"],
                created["created_by_type"], created["user_name"]) == (key, "CreateAccessKey", by, kind, user)
    assert investigate(engine, CREATOR_KEY, WINDOW).to_json()["key_creation"] is None  # before the logs begin
