"""data_access_events: secrets, parameters, passwords, user data and shared snapshots."""

from __future__ import annotations

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.intel.taxonomy import data_access_calls
from keyresponse.queries import get_query


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


def test_its_default_list_is_the_taxonomys_and_an_unbound_run_reads_the_same() -> None:
    """keyresponse/intel/taxonomy.py is the one home of what counts as data access; the header's default
    (for callers that bind none, as runs recorded before the param existed) is that list written out."""
    assert get_query("data_access_events").params["data_calls"].default == data_access_calls()


def test_unbound_and_bound_runs_agree(engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]) -> None:
    keys = technique_keys["aws.credential-access.secretsmanager-batch-retrieve-secrets"]
    assert engine.run("data_access_events", {"access_key_ids": keys, **wide}) == run(engine, keys, wide) != []
