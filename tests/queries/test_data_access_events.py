"""data_access_events: secrets, parameters, passwords, user data and shared snapshots."""

from __future__ import annotations

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.intel.taxonomy import data_access_calls


def run(engine: DuckDBEngine, keys: list[str], wide: dict[str, str]) -> list[dict[str, object]]:
    return engine.run("data_access_events", {"access_key_ids": keys, "data_calls": data_access_calls(), **wide})


def test_counts_secret_reads_per_secret(engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]) -> None:
    rows = run(engine, technique_keys["aws.credential-access.secretsmanager-retrieve-secrets"], wide)
    reads = [r for r in rows if r["event_name"] == "GetSecretValue"]
    assert sum(int(str(r["call_count"])) for r in reads) == 20
    assert all(str(r["resource"]).startswith("arn:aws:secretsmanager:") for r in reads)
    # ListSecrets lists names and reads no secret: inventory, not data access (keyresponse/intel/taxonomy.py)
    assert {r["event_name"] for r in rows} == {"GetSecretValue"}


def test_marks_ssm_parameters_read_with_decryption(
    engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]
) -> None:
    rows = run(engine, technique_keys["aws.credential-access.ssm-retrieve-securestring-parameters"], wide)
    assert {r["event_name"] for r in rows} == {"GetParameters"}
    assert all(r["is_decrypted"] is True for r in rows)
    assert all(str(r["resource"]).startswith("[") for r in rows), "several names come back as JSON text"


def test_covers_batch_secrets_passwords_user_data_and_sharing(
    engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]
) -> None:
    expected = {
        "aws.credential-access.secretsmanager-batch-retrieve-secrets": "BatchGetSecretValue",
        "aws.credential-access.ec2-get-password-data": "GetPasswordData",
        "aws.discovery.ec2-download-user-data": "DescribeInstanceAttribute",
        "aws.exfiltration.ec2-share-ebs-snapshot": "ModifySnapshotAttribute",
        "aws.exfiltration.ec2-share-ami": "ModifyImageAttribute",
        "aws.exfiltration.rds-share-snapshot": "ModifyDBSnapshotAttribute",
    }
    for technique, event_name in expected.items():
        assert {r["event_name"] for r in run(engine, technique_keys[technique], wide)} == {event_name}, technique


def test_is_empty_for_a_key_that_read_nothing(engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]) -> None:
    assert run(engine, technique_keys["aws.persistence.iam-create-admin-user"], wide) == []
