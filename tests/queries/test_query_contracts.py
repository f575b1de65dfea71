"""The contract every query file keeps (one parametrized test per file), checked on DuckDB."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot

from keyresponse.engines.athena_engine import AthenaEngine
from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.queries import QUERIES_DIR, for_duckdb, get_query, load_query, registry

QUERY_FILES = sorted(QUERIES_DIR.glob("*.sql"))
#: Functions that transpile to DuckDB but fail there or give different results: no query file may use them.
BREAK_LIST = (
    "slice", "format", "to_iso8601", "at_timezone", "map_agg", "format_datetime", "parse_datetime", "zip",
    "url_extract_host", "ip_prefix", "is_json_scalar", "json_array_contains", "json_size", "typeof",
    "reduce", "array_distinct",
)
#: Queries that must name, in order, the partition bound first, then the time bounds.
REQUIRED_QUERIES = {
    "key_activity_summary", "key_activity_by_source_ip", "key_activity_by_region", "key_events",
    "persistence_events", "data_access_events", "derived_credentials", "recon_errors",
    "other_principals_by_source_ip", "resources_created", "key_activity_after",
}


def test_registry_holds_every_file_and_the_required_queries() -> None:
    assert sorted(registry()) == [p.stem for p in QUERY_FILES]
    assert set(registry()) >= REQUIRED_QUERIES


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.stem)
def test_header_matches_file_and_placeholders(path: Path) -> None:
    query = load_query(path)
    assert query.name == path.stem
    assert query.summary and "\n" not in query.summary
    assert set(query.placeholders) == set(query.params), "every :param is declared and every declared param used"
    assert len({c.name for c in query.columns}) == len(query.columns)
    for column in query.columns:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", column.name)
    for param in query.params.values():
        assert param.example is not None, f"param {param.name} needs an example"


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.stem)
def test_body_bounds_partitions_and_avoids_functions_that_differ(path: Path) -> None:
    query = load_query(path)
    assert re.search(r'"timestamp"\s+BETWEEN\s+:start_day\s+AND\s+:end_day', query.body), "partition bound"
    used = {f.name.lower() for f in sqlglot.parse_one(query.body, read="athena").find_all(sqlglot.exp.Anonymous)}
    called = set(re.findall(r"\b([a-z_0-9]+)\s*\(", query.body.lower()))
    assert not (called | used) & set(BREAK_LIST)


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.stem)
def test_runs_on_duckdb_with_declared_columns_in_order(path: Path, engine: DuckDBEngine, wide: dict[str, str]) -> None:
    query = load_query(path)
    params = query.example_params()
    params.update({k: v for k, v in wide.items() if k in params})
    rows = engine.run(query.name, params)  # raises QueryContractError on a column mismatch
    result = engine._con.execute(for_duckdb(query.body), query.bind(params))
    cursor_columns = [d[0] for d in result.description]
    result.fetchall()  # finish the result: an unread one blocks the shared connection's next statement
    assert cursor_columns == query.column_names
    for row in rows:
        assert list(row) == query.column_names


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.stem)
def test_athena_text_has_one_execution_parameter_per_placeholder(path: Path) -> None:
    query = get_query(path.stem)
    sql, values = AthenaEngine(database="security", output_location="s3://x/").render(
        query, query.bind(query.example_params())
    )
    assert ":" + query.placeholders[0] not in sql
    assert len(values) == len(query.placeholders) == sum(
        1 for t in sqlglot.tokenize(sql, read="athena") if t.token_type == sqlglot.TokenType.PLACEHOLDER
    )
    sqlglot.parse_one(sql, read="athena")  # still valid Athena SQL
    parts = sql.split("?")
    rebuilt = parts[0] + "".join(f":{name}{part}" for name, part in zip(query.placeholders, parts[1:], strict=True))
    assert rebuilt == query.body, "only the placeholders changed"


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.stem)
def test_every_query_has_given_expect_cases_of_its_own(path: Path) -> None:
    """A query file added without cases is half done: its name must appear in a test module of
    tests/queries/ besides this contract test (given records, expected rows, on DuckDB)."""
    cases = [p for p in Path(__file__).parent.glob("test_*.py")
             if p.name != Path(__file__).name and re.search(rf"\b{path.stem}\b", p.read_text(encoding="utf-8"))]
    assert cases, f"no case for queries/{path.name}: add given/expect cases under tests/queries/"
