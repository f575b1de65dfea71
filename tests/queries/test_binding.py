"""keyresponse.queries: headers, param checks and binding for both engines."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from keyresponse.errors import InputError
from keyresponse.queries import (
    QueryContractError,
    for_athena_qmark,
    for_duckdb,
    get_query,
    load_query,
    parse_query,
    rename_table,
    render_ddl,
    sql_literal,
)

HEADER = """/*
name: sample
summary: A sample.
params:
  keys: {type: array(varchar), example: [AKIA1]}
  day: {type: day, example: 2024/07/30}
  at: {type: timestamp, example: "2024-07-30T00:00:00Z"}
columns:
  n: {type: bigint}
*/
"""


def test_bind_rejects_unknown_and_missing_params() -> None:
    query = get_query("recon_errors")
    good = query.example_params()
    with pytest.raises(InputError, match="no params"):
        query.bind({**good, "limit": 5})
    with pytest.raises(InputError, match="needs params"):
        query.bind({k: v for k, v in good.items() if k != "end_day"})
    with pytest.raises(InputError, match="list of strings"):
        query.bind({**good, "access_key_ids": "AKIA30BEZSJBVKOFKZW0"})


def test_bind_normalises_days_and_times() -> None:
    query = parse_query(HEADER + "SELECT count(*) AS n FROM cloudtrail WHERE contains(:keys, x) AND d = :day AND t >= :at")
    bound = query.bind({"keys": ("A", "A", "B"), "day": date(2024, 7, 30), "at": "2024-07-30T23:31:21.5+02:00"})
    assert bound == {"keys": ["A", "B"], "day": "2024/07/30", "at": "2024-07-30T21:31:21Z"}
    assert query.bind({"keys": [], "day": "2024-07-30", "at": datetime(2024, 7, 30, tzinfo=UTC)})["day"] == "2024/07/30"
    for bad in ({"day": "2024/13/01"}, {"at": "yesterday"}, {"day": "30/07/2024"}):
        with pytest.raises(InputError):
            query.bind({"keys": [], "day": "2024/07/30", "at": "2024-07-30T00:00:00Z", **bad})


def test_athena_binding_quotes_values_and_keeps_the_rest_of_the_text() -> None:
    sql = "SELECT ':not_a_param' AS s -- :nor_this\nFROM cloudtrail WHERE contains(:keys, k) AND name = :name"
    text, values = for_athena_qmark(sql, {"keys": ["AKIA1", "x' OR '1'='1"], "name": "a'; DROP TABLE t; --"})
    assert text == "SELECT ':not_a_param' AS s -- :nor_this\nFROM cloudtrail WHERE contains(?, k) AND name = ?"
    assert values == ["ARRAY['AKIA1', 'x'' OR ''1''=''1']", "'a''; DROP TABLE t; --'"]
    assert sql_literal([]) == "CAST(ARRAY[] AS ARRAY(VARCHAR))"
    assert sql_literal(5) == "5" and sql_literal(True) == "true" and sql_literal(None) == "NULL"
    with pytest.raises(InputError):
        sql_literal("nul\x00byte")


def test_duckdb_binding_uses_named_parameters() -> None:
    out = for_duckdb("SELECT * FROM cloudtrail WHERE contains(:keys, useridentity.accesskeyid) AND eventtime >= :t")
    assert "$keys" in out and "$t" in out and ":keys" not in out


def test_rename_table_touches_only_the_table() -> None:
    sql = "SELECT 'cloudtrail' AS cloudtrail_name FROM cloudtrail JOIN cloudtrail AS b ON true"
    assert rename_table(sql, '"security"."ct"') == (
        "SELECT 'cloudtrail' AS cloudtrail_name FROM \"security\".\"ct\" JOIN \"security\".\"ct\" AS b ON true"
    )


def test_contract_errors(tmp_path: Path) -> None:
    with pytest.raises(QueryContractError, match="no YAML header"):
        parse_query("SELECT 1")
    with pytest.raises(QueryContractError, match="do not match"):
        parse_query(HEADER + "SELECT count(*) AS n FROM cloudtrail WHERE d = :day AND x = :undeclared")
    path = tmp_path / "other_name.sql"
    path.write_text(HEADER + "SELECT count(*) AS n FROM cloudtrail WHERE contains(:keys, x) AND d = :day AND t = :at")
    with pytest.raises(QueryContractError, match="file stem"):
        load_query(path)
    with pytest.raises(InputError, match="no query named"):
        get_query("no_such_query")


def test_ddl_renders_partition_projection_and_rejects_bad_values() -> None:
    ddl = render_ddl(bucket="org-trail", accounts=["111122223333", "444455556666"], regions=["us-east-1", "eu-west-1"])
    assert "'projection.account.values' = '111122223333,444455556666'" in ddl
    assert "'projection.timestamp.format' = 'yyyy/MM/dd'" in ddl
    assert "'s3://org-trail/AWSLogs/${account}/CloudTrail/${region}/${timestamp}'" in ddl
    assert "{{" not in ddl
    with pytest.raises(InputError):
        render_ddl(bucket="x'; DROP", accounts=["111122223333"], regions=["us-east-1"])
