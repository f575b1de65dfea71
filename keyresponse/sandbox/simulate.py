"""Run a scenario against the sandbox and write its CloudTrail logs, ground truth and alerts.

    run_simulation(scenario="pivot-chain", out=Path("out"), events=200_000, seed=7)
    run_simulation(scenario="pivot-chain", out=Path("out"), events_per_day=3000, days=1, history_days=7,
                   habit="residential", style="tor")

writes `out/AWSLogs/...` (the real layout), `out/ground_truth.json`, `out/alerts/*.json` and
`out/intel/` (the published cloud ranges and the Tor exit list covering the run's addresses).
The attack happens in the last hours of the span; the owner's own use of the key runs through
the whole span, so "new source IP" is something an investigation can actually tell.
`ground_truth.json` names the window to investigate (`investigate_window`: the last `days`; the
`history_days` before it are the key's past) and the intel files (`intel`, relative to `out`).
`play_attack` + `write_run` make several runs of one played attack (the robustness grid does).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

from keyresponse.errors import InputError
from keyresponse.sandbox.alerts import write_alerts
from keyresponse.sandbox.background import Activity, files_of, plan_files, write_logs
from keyresponse.sandbox.cloudtrail import Identity, LogLayout, iso
from keyresponse.sandbox.networks import (
    LEGACY_CI,
    LEGACY_CORP,
    LEGACY_LAMBDA,
    LEGACY_OWNER,
    LEGACY_OWNER_UA,
    RUNTIME_UA,
    Estate,
    Plan,
    check_habit,
    estate_for,
    write_intel,
)
from keyresponse.sandbox.scenarios import CONTROLS, OWNER_UA, Scenario, get_scenario
from keyresponse.sandbox.seed import USERS, SeededAccount, seed_account, seeded_account_of
from keyresponse.sandbox.server import MotoSandbox, admin_client
from keyresponse.sandbox.simulator import Simulation, mint_key_id
from keyresponse.sandbox.styles import apply_style, check_style

REGION_WEIGHTS = {"us-east-1": 0.6, "eu-west-1": 0.2, "us-west-2": 0.12, "ap-southeast-2": 0.08}
CLI_UA = ("aws-cli/2.15.30 Python/3.11.8 Linux/5.10.210-201.852.amzn2.x86_64 exe/x86_64.amzn.2 prompt/off "
          "command/ec2.describe-instances")
CONSOLE_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
ATTACK_BEFORE_END = timedelta(hours=5)


class SimulationSummary(TypedDict):
    """What `keyresponse simulate` prints of a run."""

    scenario: str
    out: str
    files: int
    records: int
    bytes: int
    seconds: float
    events_per_second: int | None
    compromised_access_key_id: str
    attacker_credentials: int


@dataclass
class SimulationResult:
    scenario: str
    out: Path
    files: int
    records: int
    bytes_written: int
    seconds: float
    ground_truth: dict[str, Any]

    def summary(self) -> SimulationSummary:
        return {"scenario": self.scenario, "out": str(self.out), "files": self.files, "records": self.records,
                "bytes": self.bytes_written, "seconds": round(self.seconds, 2),
                "events_per_second": round(self.records / self.seconds) if self.seconds else None,
                "compromised_access_key_id": self.ground_truth["compromised_access_key_id"],
                "attacker_credentials": len(self.ground_truth["attacker_credentials"])}


def check_out_dir(out: Path) -> Path:
    """Create `out` or refuse with a one-line reason."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not out.is_dir() or not os.access(out, os.W_OK):
        raise InputError(f"output folder {out} is not writable")
    return out


def background_activities(account: SeededAccount, sim: Simulation, rng: random.Random,
                          estate: Estate | None = None) -> tuple[list[Activity], list[str]]:
    """The legitimate traffic of the account; returns it and every credential it uses. `estate` says
    where each kind of user calls from (the original simulator's networks when None)."""
    net = estate or legacy_estate()
    acct = account.account_id
    acts: list[Activity] = []
    benign: list[str] = []
    regions = tuple(REGION_WEIGHTS)
    specs = {u.name: u for u in USERS}
    owner_daily = net.owner.daily or None
    for key in account.keys:
        user = key.user_name
        ident = Identity.iam_user(acct, user, sim.user_id(user), key.access_key_id)
        is_owner = key.access_key_id == sim.victim_key.access_key_id
        service_user = not specs[user].console
        ips = net.owner.default if is_owner else net.ci_ips if service_user else net.corp_ips
        daily = owner_daily if is_owner else None
        ua = net.owner_ua if is_owner else OWNER_UA if service_user else CLI_UA
        w = 1.0 if not is_owner else 0.6
        benign.append(key.access_key_id)
        acts += [
            Activity(ident, "ec2", "DescribeInstances", {"instancesSet": {}, "filterSet": {}}, ips, ua, 3 * w, regions,
                     daily=daily),
            Activity(ident, "sts", "GetCallerIdentity", None, ips, ua, 1 * w, regions, daily=daily),
            Activity(ident, "s3", "ListBuckets", {"Host": "s3.amazonaws.com"}, ips, ua, 0.5 * w, daily=daily),
            Activity(ident, "s3", "GetObject", {"bucketName": "acme-prod-data", "Host": "acme-prod-data.s3.amazonaws.com",
                                                "key": "exports/2026/11/customers-001.csv"}, ips, ua, 2 * w,
                     daily=daily),
            Activity(ident, "lambda", "ListFunctions", None, ips, ua, 0.5 * w, ("us-east-1",), daily=daily),
            Activity(ident, "cloudwatch", "DescribeAlarms", {"maxRecords": 100}, ips, ua, 0.7 * w, regions,
                     daily=daily),
        ]
        if service_user:
            acts.append(Activity(ident, "s3", "PutObject", {"bucketName": "acme-backups", "key": "db/latest.sql.gz",
                                                            "Host": "acme-backups.s3.amazonaws.com"}, ips, ua, 1.5 * w,
                                 daily=daily))
        if user == "etl-pipeline":
            acts.append(Activity(ident, "secretsmanager", "GetSecretValue", {"secretId": "prod/db/master"}, ips, ua,
                                 1.0, daily=daily))
        if user == "alice":
            acts.append(Activity(ident, "iam", "ListAccessKeys", {"userName": "alice"}, ips, ua, 0.2))
            acts.append(Activity(ident, "ec2", "TerminateInstances", {"instancesSet": {"items": [
                {"instanceId": "i-0123456789abcdef0"}]}}, ips, ua, 0.05, ("us-east-1",),
                error=("Client.UnauthorizedOperation", "You are not authorized to perform this operation.")))
        if is_owner and net.runtime is not None:
            acts += _runtime_activities(ident, net.runtime)
    # console sign-ins (no access key)
    for spec in (u for u in USERS if u.console):
        ident = Identity.iam_user(acct, spec.name, sim.user_id(spec.name), None)
        acts.append(Activity(ident, "signin", "ConsoleLogin", None, net.corp_ips, CONSOLE_UA, 0.05,
                             response={"ConsoleLogin": "Success"},
                             additional={"LoginTo": "https://console.aws.amazon.com/console/home",
                                         "MobileVersion": "No", "MFAUsed": "Yes" if spec.mfa else "No"}))
    # Lambda's execution role: AWS assumes it, the function uses the session
    lambda_role = Identity.aws_service(acct, "lambda.amazonaws.com")
    for i in range(3):
        session_key = mint_key_id(rng, "ASIA")
        benign.append(session_key)
        session_name = f"invoice-renderer-{i}"
        acts.append(Activity(lambda_role, "sts", "AssumeRole", {
            "roleArn": f"arn:aws:iam::{acct}:role/lambda-exec", "roleSessionName": session_name},
            ("lambda.amazonaws.com",), "lambda.amazonaws.com", 0.3,
            response={"credentials": {"accessKeyId": session_key, "sessionToken": "<redacted-by-simulator>",
                                      "expiration": "Nov 30, 2026, 12:00:00 AM"},
                      "assumedRoleUser": {"assumedRoleId": f"{sim.role_id('lambda-exec')}:{session_name}",
                                          "arn": f"arn:aws:sts::{acct}:assumed-role/lambda-exec/{session_name}"}}))
        session = Identity.assumed_role(acct, "lambda-exec", sim.role_id("lambda-exec"), session_name, session_key,
                                        "2026-11-01T00:00:00Z")
        acts.append(Activity(session, "s3", "GetObject", {"bucketName": "acme-app-config", "key": "app/config.yaml",
                                                          "Host": "acme-app-config.s3.amazonaws.com"},
                             net.lambda_ips, "Boto3/1.34.0 Botocore/1.34.0 exec-env/AWS_Lambda_python3.12", 1.0))
    # the owner's own role session, from the owner's own network: derived from the key, and benign
    owner_key = sim.victim_key.access_key_id
    owner_ident = Identity.iam_user(acct, sim.victim_key.user_name, sim.user_id(sim.victim_key.user_name), owner_key)
    owner_session = mint_key_id(rng, "ASIA")
    benign.append(owner_session)
    acts.append(Activity(owner_ident, "sts", "AssumeRole", {
        "roleArn": f"arn:aws:iam::{acct}:role/ops-admin", "roleSessionName": "nightly-deploy"},
        net.owner.default, net.owner_ua, 0.05,
        response={"credentials": {"accessKeyId": owner_session, "sessionToken": "<redacted-by-simulator>",
                                  "expiration": "Nov 30, 2026, 12:00:00 AM"},
                  "assumedRoleUser": {"assumedRoleId": f"{sim.role_id('ops-admin')}:nightly-deploy",
                                      "arn": f"arn:aws:sts::{acct}:assumed-role/ops-admin/nightly-deploy"}},
        daily=owner_daily))
    deploy = Identity.assumed_role(acct, "ops-admin", sim.role_id("ops-admin"), "nightly-deploy", owner_session,
                                   "2026-11-01T00:00:00Z")
    acts.append(Activity(deploy, "lambda", "UpdateFunctionCode", {"functionName": "invoice-renderer", "publish": True},
                         net.owner.default, net.owner_ua, 0.1, daily=owner_daily))
    # AWS services acting on the account's behalf
    for service in ("cloudtrail.amazonaws.com", "config.amazonaws.com"):
        acts.append(Activity(Identity.aws_service(acct, service), "kms", "Decrypt",
                             {"encryptionContext": {"aws:s3:arn": "arn:aws:s3:::acme-cloudtrail-logs"}},
                             (service,), service, 0.4, regions))
    return acts, sorted(set(benign) - {owner_key})


def _runtime_activities(ident: Identity, runtime: Plan) -> list[Activity]:
    """The owner's Lambda function, with the key in its environment: reads its config, writes renders."""
    daily = runtime.daily or None
    return [
        Activity(ident, "s3", "GetObject", {"bucketName": "acme-app-config", "key": "app/config.yaml",
                                            "Host": "acme-app-config.s3.amazonaws.com"},
                 runtime.default, RUNTIME_UA, 1.2, daily=daily),
        Activity(ident, "s3", "PutObject", {"bucketName": "acme-app-config", "key": "renders/invoice.pdf",
                                            "Host": "acme-app-config.s3.amazonaws.com"},
                 runtime.default, RUNTIME_UA, 0.8, daily=daily),
        Activity(ident, "sts", "GetCallerIdentity", None, runtime.default, RUNTIME_UA, 0.2, daily=daily),
    ]


def legacy_estate() -> Estate:
    """The original simulator's networks (documentation-range office, fixed CI addresses)."""
    return Estate(None, LEGACY_CORP, LEGACY_CI, LEGACY_LAMBDA, Plan(LEGACY_OWNER), LEGACY_OWNER_UA)


def _upload(out: Path, bucket: str, endpoint: str) -> int:
    s3 = admin_client(endpoint, "s3")
    count = 0
    for path in files_of(out):
        s3.upload_file(str(path), bucket, str(path.relative_to(out)))
        count += 1
    return count


@dataclass
class PlayedAttack:
    """A scenario played once against the sandbox (its real calls, logged) and the log span's end.

    `write_run` turns it into logs as often as needed - other backgrounds, windows, habits and
    attacker styles - without calling moto again (a second play would meet the first's users and
    keys)."""

    spec: Scenario
    account: SeededAccount
    sim: Simulation
    end: datetime
    seed: int
    endpoint: str


def play_attack(scenario: str, box: MotoSandbox, *, seed: int = 7, anchor: datetime | None = None) -> PlayedAttack:
    """Seed `box` if it is not yet, and play `scenario` in it, ending its span at `anchor`."""
    spec = get_scenario(scenario)
    # Default end of the span: today 00:00 UTC, so runs on one day with one seed give identical bytes.
    if anchor is None:
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        end = anchor.astimezone(UTC)
    account = seeded_account_of(box) or seed_account(box, seed=seed)
    sim = Simulation(account=account, scenario=spec.name, victim=spec.victim, seed=seed,
                     attack_start=end - ATTACK_BEFORE_END, expected_verdict=spec.expected_verdict)
    spec.run(sim)
    return PlayedAttack(spec, account, sim, end, seed, box.endpoint)


def _check(value: float | None, name: str, *, positive: bool = False) -> None:
    if value is None:
        return
    if positive and value <= 0:
        raise InputError(f"--{name} must be more than zero, not {value}")
    if value < 0:
        raise InputError(f"--{name} must be zero or more, not {value}")


def write_run(
    played: PlayedAttack,
    out: Path,
    *,
    events: int = 50_000,
    events_per_day: float | None = None,
    days: float = 2.0,
    history_days: float = 0.0,
    habit: str | None = None,
    style: str | None = None,
    processes: int | None = None,
) -> SimulationResult:
    """Write one run of a played attack: logs, ground truth, alerts and intel files under `out`.

    The window to investigate is the last `days` before the end; the logs reach `history_days`
    further back (0: a new key, nothing before the window). The background is `events_per_day` for
    the whole account when given, else `events` in all, the attack's records included."""
    _check(events, "events")
    _check(events_per_day, "events-per-day")
    _check(days, "days", positive=True)
    _check(history_days, "history-days")
    style_name = check_style(style, timedelta(days=days))
    check_out_dir(out)
    started = time.perf_counter()
    seed, sim, account, end = played.seed, played.sim, played.account, played.end
    window_start = end - timedelta(days=days)
    start = window_start - timedelta(days=history_days)
    estate = estate_for(habit, start=start, end=end, seed=seed, runtime=style_name == "service-runtime")
    styled = apply_style(style_name, sim.calls, estate=estate, seed=seed, attack_end=end - ATTACK_BEFORE_END)
    truth: dict[str, Any] = json.loads(json.dumps(sim.truth.to_json()))
    if style_name != "burst-vps":  # as played, the truth keeps every address the operators were given
        truth["attacker_ips"], truth["attacker_user_agents"] = styled.attacker_ips, styled.attacker_user_agents
    attack_at = iso(end - ATTACK_BEFORE_END)
    truth["window"] = styled.window or {"start": attack_at, "end": attack_at}
    owner_spec = next(u for u in USERS if u.name == played.spec.victim)
    truth["owner"] = {"user_name": played.spec.victim, "arn": f"arn:aws:iam::{account.account_id}:user/{played.spec.victim}",
                      "usual_ips": estate.owner_ips(), "user_agent": estate.owner_ua, "tags": dict(owner_spec.tags),
                      "runtime_ips": estate.runtime.all_ips() if estate.runtime else []}
    rng = random.Random(f"{seed}:background")
    activities, benign = background_activities(account, sim, rng, estate)
    attacker_keys = {c["access_key_id"] for c in truth["attacker_credentials"]}
    truth["benign_credentials"] = [k for k in benign if k not in attacker_keys]
    span_days = days + history_days
    background = (round(events_per_day * span_days) if events_per_day is not None
                  else max(0, events - len(styled.records)))
    layout = LogLayout(out, account.account_id)
    jobs = plan_files(start=start, end=end, background_events=background, region_weights=REGION_WEIGHTS,
                      scenario_records=styled.records, seed=seed)
    files, records, size = write_logs(layout=layout, activities=activities, jobs=jobs, seed=seed,
                                      account_id=account.account_id, processes=processes)
    truth |= {"investigate_window": {"start": iso(window_start), "end": iso(end)},
              "log_span": {"start": iso(start), "end": iso(end)},
              "habit": habit, "style": style_name, "events_per_day": events_per_day, "history_days": history_days,
              "control": played.spec.name in CONTROLS,
              "intel": write_intel(out, created=end)}
    truth["exposure"] = write_alerts(out / "alerts", truth, played.spec, seed)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return SimulationResult(played.spec.name, out, files, records, size, time.perf_counter() - started, truth)


def run_simulation(
    *,
    scenario: str,
    out: Path,
    events: int = 50_000,
    seed: int = 7,
    anchor: datetime | None = None,
    days: float = 2.0,
    sandbox: MotoSandbox | None = None,
    upload: bool = False,
    processes: int | None = None,
    events_per_day: float | None = None,
    history_days: float = 0.0,
    habit: str | None = None,
    style: str | None = None,
) -> SimulationResult:
    """Run `scenario` in `sandbox` (a fresh one if None) and write its logs, truth and alerts to `out`.

    `days` is the window to investigate, ending at `anchor`; `history_days` of logs before it (the
    key's past), `events_per_day` (instead of `events`), `habit` and `style` are described in
    `write_run`, `keyresponse.sandbox.networks` and `keyresponse.sandbox.styles`."""
    get_scenario(scenario)
    _check(events, "events")
    _check(days, "days", positive=True)
    check_style(style, timedelta(days=days))
    check_habit(habit)
    check_out_dir(out)
    started = time.perf_counter()
    own = sandbox is None
    box = sandbox or MotoSandbox().start()
    try:
        played = play_attack(scenario, box, seed=seed, anchor=anchor)
        result = write_run(played, out, events=events, events_per_day=events_per_day, days=days,
                           history_days=history_days, habit=habit, style=style, processes=processes)
        if upload:
            _upload(out, played.account.trail_bucket, box.endpoint)
    finally:
        if own:
            box.stop()
    result.seconds = time.perf_counter() - started
    return result
