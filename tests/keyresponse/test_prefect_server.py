from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from prefect import flow, get_run_logger


@flow(name="smoke-flow")
def _smoke(x: int) -> int:
    get_run_logger().info("smoke %s", x)
    return x * 2


def test_a_flow_runs_against_the_session_server(prefect_server: str) -> None:
    from prefect import get_client

    state = _smoke(21, return_state=True)
    assert state.is_completed() and state.result() == 42
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name and run.state_type.value == "COMPLETED"


def test_a_new_server_starts_from_the_migrated_database_of_its_prefect_version(
        prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server in a new home starts from the kept copy of a migrated database (here the session
    server's, as the first server of this Prefect version leaves it) and serves like any other: the
    copy is at the same schema revision, and a flow can be written and read back."""
    from keyresponse.prefect_server import PrefectServer, _copy_database, _template

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL", raising=False)
    migrated = Path(os.environ["PREFECT_HOME"]) / "prefect.db"
    template = _template()
    assert template.is_relative_to(tmp_path / "cache")
    template.parent.mkdir(parents=True)
    _copy_database(migrated, template)
    with sqlite3.connect(template) as con:  # a mark that only a copy of the template can carry
        con.execute("create table copied_from_template (x)")
    con.close()

    server = PrefectServer(tmp_path / "new", reuse_existing=False)
    try:
        server.start()
        with server.client() as client:
            created = client.read_flow(client.create_flow_from_name("template-check"))
    finally:
        server.stop()
    assert created.name == "template-check"
    with sqlite3.connect(tmp_path / "new" / "prefect.db") as con:
        marked = con.execute("select count(*) from sqlite_master where name = 'copied_from_template'").fetchone()
    con.close()
    assert marked == (1,), "the new server's database is not a copy of the template"
    assert _revision(tmp_path / "new" / "prefect.db") == _revision(migrated) is not None


def _revision(db: Path) -> str | None:
    with sqlite3.connect(db) as con:
        row = con.execute("select version_num from alembic_version").fetchone()
    con.close()
    return str(row[0]) if row else None
