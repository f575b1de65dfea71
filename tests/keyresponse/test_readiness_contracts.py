"""The contract every readiness check keeps, checked over the whole registry (`keyresponse.readiness.CHECKS`).

Declared metadata (ids, titles, severities, references, ATT&CK and CIS ids, IAM reads, the hardening actions
that close the gap) is checked as data, against the hardening registry and the readiness policy; then each
check runs against a moto server of this module's own, furnished with a trail and an alert route so that
every read is made, and must make no call it does not declare.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest

import keyresponse.readiness.checks as checks_package
from keyresponse.readiness import CHECKS, PERMISSIONS, Check, ReadinessCheck, ReadinessOptions, assess
from keyresponse.readiness.assessment import ASSESS_PERMISSIONS, open_scope
from keyresponse.readiness.checks import registry
from keyresponse.readiness.routes import ALERT_ROUTES, ROUTES_BY_CHECK, route_matches, webhook_endpoint
from keyresponse.readiness.unit import PERS, SEVERITIES
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import Settings
from tasks.actions import Clients
from tasks.hardening import registry as hardening_registry
from tasks.hardening._plan import plan_hardening
from tasks.iam_policy import PERMISSION_RE, readiness_permissions, readiness_policy

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
READ_ONLY = re.compile(r"^[a-z0-9-]+:(Get|List|Describe|Generate)[A-Z]")
ATTACK_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
CIS_ID = re.compile(r"^\d+\.\d+$")
#: Where an API operation's name is not its IAM action.
IAM_ACTION_OF = {"s3:GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration"}


def unit_modules(folder: Path) -> set[str]:
    """The stems of the check modules in `folder` (helpers start with `_`)."""
    return {path.stem for path in folder.glob("*.py") if not path.stem.startswith("_")}


def check_module(stem: str) -> ModuleType:
    return importlib.import_module(f"{checks_package.__name__}.{stem}")


CHECKS_FOLDER = Path(str(checks_package.__file__)).parent


# -- declared metadata ---------------------------------------------------------------------------


@pytest.mark.parametrize("stem", sorted(unit_modules(CHECKS_FOLDER)))
def test_registers_the_check_of_every_module_under_its_file_name(stem: str) -> None:
    module = check_module(stem)
    assert module.__doc__, f"{stem}: the module needs a docstring saying what passes"
    check = getattr(module, "CHECK", None)
    assert isinstance(check, ReadinessCheck), f"{stem}: the module defines no CHECK"
    assert check.id == stem, "the file name is the check's id"
    assert any(check is registered for registered in CHECKS), f"{stem}: not in the registry CHECKS"


def test_registers_a_module_for_every_check_and_no_id_twice() -> None:
    ids = [check.id for check in CHECKS]
    assert len(ids) == len(set(ids)) == len(registry())
    assert set(ids) == unit_modules(CHECKS_FOLDER)


def test_finds_a_module_left_out_of_the_registry(tmp_path: Path) -> None:
    """The check above can fail: a check module added without its registry entry is a stem too many."""
    for stem in (*(check.id for check in CHECKS), "new_check", "_shared"):
        (tmp_path / f"{stem}.py").write_text('"""x"""\n')
    assert unit_modules(tmp_path) - {check.id for check in CHECKS} == {"new_check"}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_declares_the_contract_when_registered(check: ReadinessCheck) -> None:
    assert SNAKE_CASE.fullmatch(check.id), check.id
    for text in (check.title, check.rationale, check.remediation):
        assert text.strip() == text and text, f"{check.id}: title, rationale and remediation are required"
    assert check.severity in SEVERITIES and check.per in PERS
    assert callable(check.run)
    assert check.permissions and len(set(check.permissions)) == len(check.permissions)
    assert all(PERMISSION_RE.fullmatch(p) and READ_ONLY.match(p) for p in check.permissions), check.permissions
    assert check.references and len(set(check.references)) == len(check.references)
    for url in check.references:
        parsed = urlparse(url)
        assert parsed.scheme == "https" and parsed.netloc and " " not in url, url
    assert all(ATTACK_ID.fullmatch(t) for t in check.attack), check.attack
    assert all(CIS_ID.fullmatch(c) for c in check.cis), check.cis
    assert len(set(check.hardened_by)) == len(check.hardened_by)
    assert set(check.hardened_by) <= set(hardening_registry()), f"{check.id}: unknown hardening actions"


def test_derives_the_readiness_reads_from_the_registry() -> None:
    declared = [p for check in CHECKS for p in check.permissions]
    assert tuple(dict.fromkeys([*ASSESS_PERMISSIONS, *declared])) == PERMISSIONS
    granted = {a for statement in readiness_policy()["Statement"] for a in statement["Action"]}
    assert set(PERMISSIONS) <= set(readiness_permissions()) and set(PERMISSIONS) <= granted


def test_has_a_check_for_every_alert_route() -> None:
    by_id = registry()
    for route in ALERT_ROUTES:
        check = by_id[route.check_id]
        assert check.per == ("home_region" if route.home_only else "region")
        assert route_matches(route, route.pattern)
    assert set(ROUTES_BY_CHECK) <= set(by_id)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_is_closed_by_exactly_its_hardening_actions_when_failing(check: ReadinessCheck, tmp_path: Path) -> None:
    """`hardened_by` is what the planner does with the gap: those actions, or a note for a human."""
    settings = Settings(home=tmp_path, evidence_bucket=None)
    region = None if check.per == "account" else settings.region
    failing = Check(id=check.id, title=check.title, account_id="123456789012", region=region, status="fail",
                    evidence="planted", fix=check.remediation)
    plan = plan_hardening([failing], ReadinessOptions(trail_bucket="trail-bucket"), settings)
    assert {step.action.name for step in plan.steps} == set(check.hardened_by)
    assert bool(plan.manual) == (not check.hardened_by), plan.manual


# -- run against moto -----------------------------------------------------------------------------

US = "us-east-1"
BUCKET = "contract-trail-bucket"


@pytest.fixture(scope="module")
def furnished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A moto server of this module's own, with a GuardDuty detector, a trail (and its data events) and
    every alert route, so that every check has something to read all the way down."""
    with MotoSandbox() as box, pytest.MonkeyPatch.context() as env:
        for key, value in box.env().items():
            env.setenv(key, value)
        boto3.client("s3", region_name=US).create_bucket(Bucket=BUCKET)
        cloudtrail = boto3.client("cloudtrail", region_name=US)
        cloudtrail.create_trail(Name="contract-trail", S3BucketName=BUCKET, IsMultiRegionTrail=True)
        cloudtrail.put_event_selectors(TrailName="contract-trail", EventSelectors=[{
            "ReadWriteType": "All", "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}])
        boto3.client("guardduty", region_name=US).create_detector(Enable=True)
        events = boto3.client("events", region_name=US)
        connection = events.create_connection(
            Name="contract-connection", AuthorizationType="API_KEY",
            AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "Authorization", "ApiKeyValue": "Bearer x"}})
        for route in ALERT_ROUTES:
            destination = events.create_api_destination(
                Name=route.destination_name, ConnectionArn=connection["ConnectionArn"], HttpMethod="POST",
                InvocationEndpoint=webhook_endpoint(ReadinessOptions(), route))
            events.put_rule(Name=route.rule_name, EventPattern=json.dumps(route.pattern), State="ENABLED")
            events.put_targets(Rule=route.rule_name, Targets=[
                {"Id": "webhook", "Arn": destination["ApiDestinationArn"]}])
        yield Settings(home=tmp_path_factory.mktemp("home"), evidence_bucket=None)


def _recorder(clients: Clients) -> list[str]:
    """Every call the clients make from now on, as IAM actions."""
    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        service = model.service_model.signing_name or model.service_model.endpoint_prefix
        action = f"{service}:{model.name}"
        seen.append(IAM_ACTION_OF.get(action, action))

    clients.register("before-call", record)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_makes_only_the_calls_it_declares_and_emits_its_own_id(check: ReadinessCheck, furnished: Settings) -> None:
    clients = Clients()
    scope = open_scope(clients, furnished, ReadinessOptions(regions=[US, "eu-west-1"]), emulated=False)
    calls = _recorder(clients)  # a scope of its own: the check makes the reads it shares with others itself
    found: list[Check] = []
    for region in check.regions(scope):
        result = check.run(scope, region)
        if result is not None:
            found.append(result)
            assert result.id == check.id
            assert result.region == (None if check.per == "account" else region)
            assert result.status != "not_verifiable", result.evidence  # every read was allowed and answered
    assert found, f"{check.id}: emitted nothing"
    assert set(calls) <= set(check.permissions), f"{check.id}: undeclared calls {set(calls) - set(check.permissions)}"
    assert set(check.permissions) <= set(calls), f"{check.id}: declares calls it never made here"


@pytest.mark.slow
def test_runs_the_checks_in_registry_order_when_assessed(furnished: Settings) -> None:
    order = [check.id for check in CHECKS]
    checks = assess(Clients(), furnished, ReadinessOptions(regions=[US, "eu-west-1"]))
    ranks = [order.index(c.id) for c in checks]
    assert ranks == sorted(ranks)
    assert {c.id for c in checks} == set(registry())
