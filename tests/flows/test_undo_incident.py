"""The `undo-incident` flow on the session's Prefect server, on incidents contained for real in moto.

An incident is contained by the containment flow itself (no approval pause): the key deactivated,
a session-revocation policy on the user and on the role the attacker assumed, both tagged. The
undo flow then runs dry (nothing changes, every change is listed), for real (it pauses for an
approval that shows every change it will undo, is approved, and moto is back to its state before
the incident) and once more (nothing is undone twice, and the output says so). A denied undo
changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from prefect_runs import run_answering

from keyresponse.incident import minimal_investigation
from keyresponse.ledger import Ledger
from keyresponse.markdown import text
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import get_settings
from tasks.actions import ActionContext, Target, left_in_place, undo_incident
from tasks.containment.deactivate_access_key import ACTION as DEACTIVATE
from tasks.eradication.delete_access_key import ACTION as DELETE
from tasks.iam_changes import INCIDENT_TAG, revocation_policy_name
from tasks.registry import registry

ACCOUNT = "123456789012"
TRUST = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
         '"Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}')


@pytest.fixture
def home(sandbox: MotoSandbox, prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


APPROVE = {"approver": "ana@example.com", "decision": "approve", "reason": "INC-7: the owner rotated the key"}
DENY = {"approver": "bob@example.com", "decision": "deny", "reason": "the incident is still open"}


def _run_undo(incident_id: str, *, dry_run: bool, answer: dict[str, str] | None = None) -> dict[str, Any]:
    """The flow as a Prefect run on the session's server; its result once it has Completed. A real
    run's approval is answered with `answer` (approved by default); the form shown is under `shown`."""
    from flows.undo_incident import undo_incident_flow

    def run() -> Any:
        return undo_incident_flow(incident_id, dry_run=dry_run, return_state=True)

    if dry_run:
        state, shown = run(), None
    else:
        state, shown = run_answering(run, f"undo:{incident_id}", answer or APPROVE)
    assert state.is_completed(), state
    result: dict[str, Any] = state.result()
    return result | {"shown": shown}


class Aws:
    """What the incident touches, read back from moto."""

    def __init__(self, user: str, role: str, key: str, other: str, incident_id: str) -> None:
        self.iam = boto3.client("iam")
        self.user, self.role, self.key, self.other, self.incident_id = user, role, key, other, incident_id

    def state(self) -> dict[str, Any]:
        keys = {k["AccessKeyId"]: k["Status"] for k in
                self.iam.list_access_keys(UserName=self.user)["AccessKeyMetadata"]}
        return {
            "keys": keys,
            "user_policies": self.iam.list_user_policies(UserName=self.user)["PolicyNames"],
            "role_policies": self.iam.list_role_policies(RoleName=self.role)["PolicyNames"],
            "user_tags": {t["Key"]: t["Value"] for t in self.iam.list_user_tags(UserName=self.user)["Tags"]},
            "role_tags": {t["Key"]: t["Value"] for t in self.iam.list_role_tags(RoleName=self.role)["Tags"]},
        }


@pytest.fixture
def contained(home: Path, unique_name: str) -> tuple[Aws, dict[str, Any]]:
    """An incident contained for real: returns moto's view and the state before containment."""
    from flows.containment import containment

    iam = boto3.client("iam")
    user, role = f"{unique_name}-u"[:64], f"{unique_name}-r"[:64]
    iam.create_user(UserName=user, Tags=[{"Key": "team", "Value": "payments"}])
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    other = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST,
                    Tags=[{"Key": INCIDENT_TAG, "Value": "an-earlier-incident"}])
    aws = Aws(user, role, key, other, f"ir-undo-{unique_name}"[:60])
    before = aws.state()
    investigation = minimal_investigation(
        access_key_id=key, account_id=ACCOUNT, principal_arn=f"arn:aws:iam::{ACCOUNT}:user/{user}",
        verdict="malicious", severity="P1",
        credentials=[
            {"access_key_id": key, "kind": "original", "created_by_event": None, "parent": None,
             "principal_arn": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
            {"access_key_id": "ASIAUNDOTESTSESSION1", "kind": "session", "created_by_event": "AssumeRole",
             "parent": key, "principal_arn": f"arn:aws:iam::{ACCOUNT}:role/{role}"},
        ])
    outcome = containment(aws.incident_id, investigation, dry_run=False, approval=False)
    assert outcome["status"] == "applied", outcome
    assert len(outcome["ledger"]) == 5, [e["action"] for e in outcome["ledger"]]
    return aws, before


def test_undo_flow_runs_dry_then_restores_moto_then_is_a_no_op(contained: tuple[Aws, dict[str, Any]]) -> None:
    aws, before = contained
    policy = revocation_policy_name(aws.incident_id)
    after_containment = aws.state()
    assert after_containment == {
        "keys": {aws.key: "Inactive", aws.other: "Active"},
        "user_policies": [policy], "role_policies": [policy],
        "user_tags": {"team": "payments", INCIDENT_TAG: aws.incident_id},
        "role_tags": {INCIDENT_TAG: aws.incident_id},
    }
    ledger = Ledger(aws.incident_id)
    applied = ledger.applied()
    lines = len(ledger.entries())
    assert [e for e, _ in left_in_place(ledger.entries(), registry())] == applied

    dry = _run_undo(aws.incident_id, dry_run=True)
    assert aws.state() == after_containment, "a dry run changed AWS"
    assert len(ledger.entries()) == lines, "a dry run wrote to the ledger"
    assert dry["dry_run"] is True and dry["undone"] == [] and dry["already_undone"] == []
    assert dry["skipped"] == [], "a dry run must not list reversible changes as skipped"
    assert [p["entry_id"] for p in dry["planned"]] == [e.entry_id for e in reversed(applied)]
    assert all(p["would_change"] is True for p in dry["planned"]), dry["planned"]
    key_step = next(p for p in dry["planned"] if p["action"] == "deactivate_access_key")
    assert key_step["current"] == {"status": "Inactive"} and key_step["restores"] == {"status": "Active"}
    assert "would undo 5 change(s)" in dry["summary"]

    real = _run_undo(aws.incident_id, dry_run=False)
    assert real["approval"]["decision"] == "approve" and real["approval"]["approver"] == APPROVE["approver"]
    assert real["shown"] is not None and "Undo of incident" in real["shown"]
    for entry in applied:  # the form showed each change it was about to undo
        assert text(Target.model_validate(entry.target).label) in real["shown"], entry
    assert real["unapproved"] == []
    evidence = Path(get_settings().home) / "incidents" / aws.incident_id / "evidence"
    stored = [json.loads(p.read_text()) for p in evidence.glob("approval-undo-*.json")]
    assert [s["answer"]["decision"] for s in stored] == ["approve"]
    assert stored[0]["plan_sha256"] == real["approval"]["plan_sha256"]
    assert [c["key"] for c in stored[0]["changes"]] == [e.entry_id for e in reversed(applied)]
    assert [u["undoes"] for u in real["undone"]] == [e.entry_id for e in reversed(applied)]
    assert all(u["changed"] for u in real["undone"]) and real["skipped"] == []
    assert aws.state() == before  # key Active, both policies gone, the user's tag removed, the role's restored
    assert left_in_place(ledger.entries(), registry()) == []

    again = _run_undo(aws.incident_id, dry_run=False)
    assert again["shown"] is None, "nothing to undo, nothing to approve"
    assert again["undone"] == [] and again["planned"] == [] and again["skipped"] == []
    assert {a["entry_id"] for a in again["already_undone"]} == {e.entry_id for e in applied}
    assert "nothing to undo" in again["summary"] and "already undone" in again["summary"]
    assert len(ledger.entries()) == lines + 5, "the second undo wrote to the ledger"
    assert aws.state() == before


def test_undo_dry_run_lists_a_change_that_cannot_be_undone_beside_those_that_can(
        home: Path, unique_name: str) -> None:
    """The old crash: a skipped entry's target is a dict in the ledger (`'dict' object has no attribute 'label'`)."""
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    kept = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    deleted = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    incident_id = f"ir-skip-{unique_name}"[:60]
    ctx = ActionContext.create(incident_id, dry_run=False)
    deactivated = DEACTIVATE.apply(ctx, Target(kind="access_key", id=kept, user_name=unique_name))
    gone = DELETE.apply(ctx, Target(kind="access_key", id=deleted, user_name=unique_name))
    assert deactivated is not None and gone is not None

    dry = _run_undo(incident_id, dry_run=True)
    assert [p["entry_id"] for p in dry["planned"]] == [deactivated.entry_id]
    assert [(s["entry_id"], s["label"]) for s in dry["skipped"]] == [
        (gone.entry_id, f"access_key:{deleted} ({unique_name})")]
    assert "cannot be undone" in dry["summary"] and dry["skipped"][0]["reason"]
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=unique_name)["AccessKeyMetadata"]}
    assert statuses == {kept: "Inactive"}


def test_a_denied_undo_changes_nothing(contained: tuple[Aws, dict[str, Any]]) -> None:
    aws, _ = contained
    after_containment = aws.state()
    ledger = Ledger(aws.incident_id)
    lines = len(ledger.entries())

    denied = _run_undo(aws.incident_id, dry_run=False, answer=DENY)
    assert denied["approval"]["decision"] == "deny" and denied["approval"]["reason"] == DENY["reason"]
    assert denied["undone"] == [] and "not approved" in denied["summary"] and "nothing was changed" in denied["summary"]
    assert len(denied["planned"]) == 5 and denied["shown"] is not None  # what was asked, and shown
    assert aws.state() == after_containment, "a denied undo changed AWS"
    assert len(ledger.entries()) == lines, "a denied undo wrote to the ledger"
    assert [e for e, _ in left_in_place(ledger.entries(), registry())] == ledger.applied()


def test_an_undo_undoes_only_the_changes_its_approval_showed(contained: tuple[Aws, dict[str, Any]]) -> None:
    """A change the ledger gained after the approval was shown is left alone, and said so."""
    aws, _ = contained
    ledger = Ledger(aws.incident_id)
    newest, *older = list(reversed(ledger.applied()))
    report = undo_incident(ActionContext.create(aws.incident_id, dry_run=False), registry(),
                           only=[e.entry_id for e in older]).as_dict()
    assert [u["undoes"] for u in report["undone"]] == [e.entry_id for e in older]
    assert [u["entry_id"] for u in report["unapproved"]] == [newest.entry_id]
    assert "1 change(s) were not in the approved undo and were left alone" in report["summary"]
    assert [e for e, _ in left_in_place(ledger.entries(), registry())] == [newest]
