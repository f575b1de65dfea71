"""key_creation: the event that made a key, found by the id in its response, whoever made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from footholds import ADMIN_ACCOUNT, ADMIN_USER, ADMIN_USER_KEY, CREATOR_KEY, ROOT_MADE_KEY, root_creates_key

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.indicator_table import indicator_filters
from keyresponse.engines.layout import write_trail_files
from keyresponse.queries import get_query

#: Made by Stratus's ec2-launch-unusual-instances detonation (AssumeRole): a session no record is made with.
SESSION_KEY = "ASIA9F6MXE9HSYOXYQOS"


def test_finds_the_creation_of_a_key_that_made_no_call(engine: DuckDBEngine, wide: dict[str, str]) -> None:
    (row,) = engine.run("key_creation", {"access_key_ids": [ADMIN_USER_KEY], **wide})
    assert (row["event_name"], row["user_name"], row["created_by_type"]) == ("CreateAccessKey", ADMIN_USER, "IAMUser")
    assert row["created_by_arn"] == f"arn:aws:iam::{ADMIN_ACCOUNT}:user/christophe"
    assert row["created_by_access_key_id"] == CREATOR_KEY
    (session,) = engine.run("key_creation", {"access_key_ids": [SESSION_KEY], **wide})
    assert session["event_name"] == "AssumeRole" and session["access_key_id"] == SESSION_KEY


def test_finds_a_key_a_root_session_created(stratus_records: list[dict[str, Any]], tmp_path: Path,
                                            wide: dict[str, str]) -> None:
    """A root-made key (hand-written from the real CreateAccessKey record, tests/footholds.py)."""
    write_trail_files([*stratus_records, root_creates_key(stratus_records, ROOT_MADE_KEY)], tmp_path / "logs")
    with DuckDBEngine(tmp_path / "logs", cache_dir=tmp_path / "cache") as eng:
        (row,) = eng.run("key_creation", {"access_key_ids": [ROOT_MADE_KEY], **wide})
    assert (row["created_by_type"], row["created_by_arn"], row["user_name"]) == (
        "Root", f"arn:aws:iam::{ADMIN_ACCOUNT}:root", "deploy-bot")


def test_is_served_by_the_key_index() -> None:
    """The engine loads only the records that mention the key (its response included), never the window."""
    assert indicator_filters(get_query("key_creation").body) == ("access_key_ids",)
