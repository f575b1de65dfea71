"""resources_created lists what to delete, one row per resource (every instance of a RunInstances)."""

from __future__ import annotations

import json
from pathlib import Path

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.layout import write_trail_files


def test_lists_users_keys_roles_and_trust_anchors(
    engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]
) -> None:
    keys = (technique_keys["aws.persistence.iam-create-admin-user"]
            + technique_keys["aws.persistence.iam-create-backdoor-role"]
            + technique_keys["aws.persistence.rolesanywhere-create-trust-anchor"])
    rows = engine.run("resources_created", {"access_key_ids": keys, **wide})
    types = {r["resource_type"]: r["resource_id"] for r in rows}
    assert types["iam:user"] == "malicious-iam-user"
    assert types["iam:access-key"] == "AKIAXAFZN8JEPF6L682H"
    assert types["iam:role"]
    assert types["rolesanywhere:trust-anchor"] and types["rolesanywhere:profile"]


def test_yields_every_instance_of_a_run_instances(
    engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]], tmp_path: Path
) -> None:
    rows = engine.run(
        "resources_created", {"access_key_ids": technique_keys["aws.execution.ec2-launch-unusual-instances"], **wide}
    )
    assert rows == [] or {r["resource_type"] for r in rows} == {"ec2:instance"}  # the detonation's call was denied
    record = {
        "eventVersion": "1.09", "eventTime": "2024-08-01T10:00:00Z", "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances", "awsRegion": "eu-west-3", "sourceIPAddress": "203.0.113.9",
        "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAEXAMPLERUNINSTAN", "arn": "arn:aws:iam::111122223333:user/x"},
        "requestParameters": {"instanceType": "p4d.24xlarge"},
        "responseElements": {"instancesSet": {"items": [{"instanceId": "i-0aaa"}, {"instanceId": "i-0bbb"}]}},
        "eventID": "e-run-1", "recipientAccountId": "111122223333",
    }
    write_trail_files([record], tmp_path / "logs")
    with DuckDBEngine(tmp_path / "logs", cache_dir=tmp_path / "cache") as local:
        rows = local.run("resources_created", {"access_key_ids": ["AKIAEXAMPLERUNINSTAN"], **wide})
    assert [(r["resource_type"], r["resource_id"], r["aws_region"]) for r in rows] == [
        ("ec2:instance", "i-0aaa", "eu-west-3"), ("ec2:instance", "i-0bbb", "eu-west-3")
    ]
    assert json.dumps(rows)  # plain JSON-able values
