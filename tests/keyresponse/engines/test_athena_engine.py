"""AthenaEngine against the moto server: the text and execution parameters Athena receives, and result parsing.

moto does not run SQL; results are injected through its FIFO (POST /moto-api/static/athena/query-results).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import boto3
import pytest

from keyresponse.engines.athena_engine import AthenaEngine
from keyresponse.queries import get_query
from keyresponse.sandbox import MotoSandbox

PARAMS = {
    "access_key_ids": ["AKIAWOGXN38MFN92ING5", "x' OR '1'='1"],
    "start_day": "2024/07/30",
    "end_day": "2024/07/31",
    "start_time": "2024-07-30T00:00:00Z",
    "end_time": "2024-08-01T00:00:00Z",
}


def inject(endpoint: str, columns: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
    def data(values: list[str | None]) -> dict[str, Any]:
        return {"Data": [{"VarCharValue": v} if v is not None else {} for v in values]}

    body = {"results": [{
        "rows": [data([name for name, _ in columns])] + [data(r) for r in rows],
        "column_info": [
            {"Name": name, "Label": name, "Type": kind, "Nullable": "UNKNOWN", "CaseSensitive": True,
             "CatalogName": "hive", "SchemaName": "", "TableName": "", "Precision": 0, "Scale": 0}
            for name, kind in columns
        ],
    }]}
    req = urllib.request.Request(f"{endpoint}/moto-api/static/athena/query-results",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201


@pytest.fixture
def engine(sandbox: MotoSandbox) -> AthenaEngine:
    boto3.client("s3", endpoint_url=sandbox.endpoint).create_bucket(Bucket="athena-results")
    return AthenaEngine(database="security", table="cloudtrail_logs", workgroup="primary",
                        output_location="s3://athena-results/keyresponse/", region="us-east-1")


def test_sends_placeholders_and_execution_parameters_and_parses_rows(sandbox: MotoSandbox, engine: AthenaEngine) -> None:
    inject(sandbox.endpoint,
           [("source_ip", "varchar"), ("event_count", "bigint"), ("error_count", "bigint"),
            ("user_agents", "varchar"), ("access_key_ids", "varchar"), ("regions", "varchar"),
            ("event_names", "varchar"), ("error_codes", "varchar"), ("first_seen_at", "varchar"),
            ("last_seen_at", "varchar")],
           [["200.249.253.51", "34", "30", '["aws-cli/2.0 (KHTML, like Gecko)","stratus"]',
             '["AKIAWOGXN38MFN92ING5"]', '["us-east-1"]', '["ListUsers"]', '["AccessDenied"]',
             "2024-07-30T21:31:10Z", "2024-07-30T21:31:21Z"]])
    rows = engine.run("key_activity_by_source_ip", PARAMS)
    assert rows == [{
        "source_ip": "200.249.253.51", "event_count": 34, "error_count": 30,
        "user_agents": ["aws-cli/2.0 (KHTML, like Gecko)", "stratus"],
        "access_key_ids": ["AKIAWOGXN38MFN92ING5"], "regions": ["us-east-1"], "event_names": ["ListUsers"],
        "error_codes": ["AccessDenied"], "first_seen_at": "2024-07-30T21:31:10Z", "last_seen_at": "2024-07-30T21:31:21Z",
    }]
    execution = boto3.client("athena", endpoint_url=sandbox.endpoint, region_name="us-east-1").get_query_execution(
        QueryExecutionId=engine.last_query_id)["QueryExecution"]
    assert execution["ExecutionParameters"] == [  # in the order of the `?` in the text
        "'2024/07/30'", "'2024/07/31'", "'2024-07-30T00:00:00Z'", "'2024-08-01T00:00:00Z'",
        "ARRAY['AKIAWOGXN38MFN92ING5', 'x'' OR ''1''=''1']",
    ]
    text = execution["Query"]
    assert "contains(?, useridentity.accesskeyid)" in text and '"timestamp" BETWEEN ? AND ?' in text
    assert "FROM cloudtrail_logs" in text and "AKIA" not in text and "OR '1'" not in text
    assert execution["QueryExecutionContext"]["Database"] == "security"
    assert engine.bytes_scanned >= 0


def test_rejects_a_result_whose_columns_break_the_contract(sandbox: MotoSandbox, engine: AthenaEngine) -> None:
    from keyresponse.queries import QueryContractError

    inject(sandbox.endpoint, [("something_else", "varchar")], [["x"]])
    with pytest.raises(QueryContractError, match="declares"):
        engine.run("recon_errors", PARAMS)


def test_render_is_the_file_with_question_marks() -> None:
    engine = AthenaEngine(database="security", output_location="s3://x/")
    query = get_query("persistence_events")
    sql, values = engine.render(query, query.bind(PARAMS))
    # four bounds, the keys, and the (optional, defaulted) excluded IPs
    assert "eventname LIKE 'CreateFunction%'" in sql and sql.count("?") == len(values) == 6
