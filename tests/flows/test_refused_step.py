"""One derived credential of a protected principal is refused alone: the rest is contained.

The attack: with the leaked key the attacker mints a key on the break-glass user and assumes a role
named like it. Were one refusal to stop the whole plan, those two credentials would shield every other
one from containment. The containment flow runs on the session's Prefect server against moto: the
other credentials are contained, the protected ones are untouched and named in the plan with the
reason, a human is told (SNS, read back from an SQS queue subscribed to it), and the report says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from keyresponse.guardrails import REFUSAL_PREFIX
from keyresponse.incident import make_incident, minimal_investigation
from keyresponse.report import credential_containment, render_markdown
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import get_settings

ACCOUNT = "123456789012"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def inbox(sandbox: MotoSandbox, prefect_server: str, tmp_path: Path, unique_name: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An SNS topic for notifications with an SQS queue subscribed to it; the queue's URL."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=f"{unique_name}-incidents"[:256])["TopicArn"]
    queue = sqs.create_queue(QueueName=f"{unique_name}-inbox"[:80])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEYRESPONSE_SNS_TOPIC_ARN", topic)
    monkeypatch.setenv("KEYRESPONSE_PROTECTED_PRINCIPALS", json.dumps([f"{unique_name}-bg"]))
    monkeypatch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()
    yield queue
    get_settings.cache_clear()


def test_a_protected_derived_credential_is_refused_alone_and_the_rest_is_contained(
    inbox: str, unique_name: str
) -> None:
    from flows.containment import containment

    iam = boto3.client("iam")
    victim, other, protected = f"{unique_name}-v", f"{unique_name}-o", f"{unique_name}-bg"
    keys = {}
    for user in (victim, other, protected):
        iam.create_user(UserName=user)
        keys[user] = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    iam.create_role(RoleName=protected, AssumeRolePolicyDocument=TRUST)  # a role named like break-glass
    session = "ASIA7RQR64ZWPROTECT1"
    arn = f"arn:aws:iam::{ACCOUNT}:user/{victim}"
    investigation = minimal_investigation(**{
        "access_key_id": keys[victim], "account_id": ACCOUNT, "principal_arn": arn,
        "credentials": [
            {"access_key_id": keys[victim], "kind": "original", "created_by_event": None, "parent": None,
             "principal_arn": arn},
            {"access_key_id": keys[protected], "kind": "access_key", "created_by_event": "CreateAccessKey",
             "parent": keys[victim], "principal_arn": f"arn:aws:iam::{ACCOUNT}:user/{protected}"},
            {"access_key_id": session, "kind": "session", "created_by_event": "AssumeRole", "parent": keys[victim],
             "principal_arn": f"arn:aws:iam::{ACCOUNT}:role/{protected}"},
            {"access_key_id": keys[other], "kind": "access_key", "created_by_event": "CreateAccessKey",
             "parent": keys[victim], "principal_arn": f"arn:aws:iam::{ACCOUNT}:user/{other}"}],
        "persistence": [], "resources_created": [], "regions": []})
    incident_id = f"inc-{unique_name}"[:60]

    outcome = containment(incident_id, investigation, dry_run=False, approval=False)

    assert outcome["status"] == "applied"
    status = {user: {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
              for user in keys}
    assert status == {victim: {keys[victim]: "Inactive"}, other: {keys[other]: "Inactive"},
                      protected: {keys[protected]: "Active"}}
    assert iam.list_user_policies(UserName=protected)["PolicyNames"] == []
    assert iam.list_role_policies(RoleName=protected)["PolicyNames"] == []
    assert iam.list_role_tags(RoleName=protected)["Tags"] == []
    assert all(iam.list_user_policies(UserName=user)["PolicyNames"] for user in (victim, other))

    # the plan names each refused step with its reason, and applies none of them
    refused = [c for c in outcome["plan"]["changes"] if c.get("refused")]
    assert {(c["action"], c["label"]) for c in refused} == {
        ("deactivate_access_key", f"access_key:{keys[protected]} ({protected})"),
        ("attach_session_revocation_policy", f"user:{protected}"), ("tag_principal", f"user:{protected}"),
        ("attach_session_revocation_policy", f"role:{protected}"), ("tag_principal", f"role:{protected}")}
    assert all("protected principal" in c["refused"] and c["summary"].startswith(REFUSAL_PREFIX) for c in refused)
    assert sum("refused and left out" in note for note in outcome["plan"]["notes"]) == 5
    assert not any(e["target"]["id"] in (protected, keys[protected]) for e in outcome["ledger"])

    # a human is told, once
    messages = boto3.client("sqs").receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)["Messages"]
    sent = [json.loads(json.loads(m["Body"])["Message"]) for m in messages]
    escalations = [m for m in sent if m["kind"] == "escalation"]
    assert len(escalations) == 1 and "5 step(s)" in escalations[0]["text"], sent
    assert protected not in escalations[0]["text"]  # counts and actions only, never a principal from the logs

    # the report: the protected credentials not contained, and why
    incident = make_incident(investigation=investigation, status="contained", ledger=outcome["ledger"],
                             plans={"containment": [{k: c[k] for k in ("action", "target", "summary",
                                                                        "requires_approval")}
                                                    for c in outcome["plan"]["changes"]]})
    rows = {row["access_key_id"]: row for row in credential_containment(incident)}
    assert rows[keys[victim]]["contained"] and rows[keys[other]]["contained"]
    for key in (keys[protected], session):
        assert not rows[key]["contained"] and "protected principal" in rows[key]["how"], rows[key]
    report = render_markdown(incident)
    assert "refused by the guardrails" in report and "protected principal" in report
