"""derived_credentials follows a key to the keys and sessions it minted."""

from __future__ import annotations

import pytest

from keyresponse.engines.duckdb_engine import DuckDBEngine

#: technique → (the key that minted, the session key the technique then used, the creating call)
CHAINS = {
    "aws.credential-access.ec2-get-password-data": ("AKIAWOGXN38MFN92ING5", "ASIANQQHHS551LWULIWD", "AssumeRole"),
    "aws.discovery.ec2-download-user-data": ("AKIAMJ2320ZAXACWCPJI", "ASIA4URVX2JM5MT0ZGK8", "AssumeRole"),
    "aws.defense-evasion.organizations-leave": ("AKIADVISM0T50G52IF0D", "ASIA36EV31F1RB3OA8IG", "AssumeRole"),
    "aws.persistence.sts-federation-token": ("AKIA6V1GNZTT65XQH36M", "ASIASTJKC5GCM7ZE6LUP", "GetFederationToken"),
}


@pytest.mark.parametrize("technique", sorted(CHAINS))
def test_finds_the_session_the_technique_went_on_to_use(
    technique: str, engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]
) -> None:
    parent, child, event = CHAINS[technique]
    assert set(technique_keys[technique]) == {parent, child}
    rows = engine.run("derived_credentials", {"access_key_ids": [parent], **wide})
    row = next(r for r in rows if r["access_key_id"] == child)
    assert (row["kind"], row["created_by_event"], row["parent_access_key_id"]) == ("session", event, parent)
    assert row["principal_arn"].startswith("arn:aws:sts::")


def test_finds_a_new_access_key_and_its_user(engine: DuckDBEngine, wide: dict[str, str]) -> None:
    rows = engine.run("derived_credentials", {"access_key_ids": ["AKIAOZUDECYXYM4ONAN4"], **wide})
    assert [(r["access_key_id"], r["kind"], r["created_by_event"], r["principal_name"]) for r in rows] == [
        ("AKIAXAFZN8JEPF6L682H", "access_key", "CreateAccessKey", "malicious-iam-user")
    ]
    assert rows[0]["principal_arn"] == "arn:aws:iam::229654561268:user/malicious-iam-user"


def test_ignores_failed_calls_and_other_keys(engine: DuckDBEngine, wide: dict[str, str]) -> None:
    # the get-password-data role's own session made failed AssumeRole calls: they mint nothing
    assert engine.run("derived_credentials", {"access_key_ids": ["ASIANQQHHS551LWULIWD"], **wide}) == []
    assert engine.run("derived_credentials", {"access_key_ids": ["AKIAIOSFODNN7EXAMPLE"], **wide}) == []
