"""Run a scenario against the sandbox and write its CloudTrail logs, ground truth and alerts.

    run_simulation(scenario="pivot-chain", out=Path("out"), events=200_000, seed=7)

writes `out/AWSLogs/...` (the real layout), `out/ground_truth.json` and `out/alerts/*.json`.
The attack happens in the last hours of the span; the owner's own use of the key runs through
the whole span, so "new source IP" is something an investigation can actually tell.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from keyresponse.errors import InputError
from keyresponse.sandbox.alerts import write_alerts
from keyresponse.sandbox.background import Activity, files_of, plan_files, write_logs
from keyresponse.sandbox.cloudtrail import Identity, LogLayout
from keyresponse.sandbox.scenarios import OWNER_IPS, OWNER_UA, get_scenario
from keyresponse.sandbox.seed import USERS, SeededAccount, seed_account, seeded_account_of
from keyresponse.sandbox.server import MotoSandbox, admin_client
from keyresponse.sandbox.simulator import Simulation, mint_key_id

REGION_WEIGHTS = {"us-east-1": 0.6, "eu-west-1": 0.2, "us-west-2": 0.12, "ap-southeast-2": 0.08}
CORP_IPS = ["198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.23", "198.51.100.24"]
CI_IPS = ["3.236.12.7", "44.203.88.19", "3.236.12.9"]
LAMBDA_IPS = ["3.218.180.11", "3.218.180.12"]
CLI_UA = ("aws-cli/2.15.30 Python/3.11.8 Linux/5.10.210-201.852.amzn2.x86_64 exe/x86_64.amzn.2 prompt/off "
          "command/ec2.describe-instances")
CONSOLE_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
ATTACK_BEFORE_END = timedelta(hours=5)


@dataclass
class SimulationResult:
    scenario: str
    out: Path
    files: int
    records: int
    bytes_written: int
    seconds: float
    ground_truth: dict[str, Any]

    def summary(self) -> dict[str, Any]:
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
                          ) -> tuple[list[Activity], list[str]]:
    """The legitimate traffic of the account; returns it and every credential it uses."""
    acct = account.account_id
    acts: list[Activity] = []
    benign: list[str] = []
    regions = tuple(REGION_WEIGHTS)
    specs = {u.name: u for u in USERS}
    for key in account.keys:
        user = key.user_name
        ident = Identity.iam_user(acct, user, sim.user_id(user), key.access_key_id)
        is_owner = key.access_key_id == sim.victim_key.access_key_id
        service_user = not specs[user].console
        ips = tuple(OWNER_IPS if is_owner else CI_IPS if service_user else CORP_IPS)
        ua = OWNER_UA if (is_owner or service_user) else CLI_UA
        w = 1.0 if not is_owner else 0.6
        benign.append(key.access_key_id)
        acts += [
            Activity(ident, "ec2", "DescribeInstances", {"instancesSet": {}, "filterSet": {}}, ips, ua, 3 * w, regions),
            Activity(ident, "sts", "GetCallerIdentity", None, ips, ua, 1 * w, regions),
            Activity(ident, "s3", "ListBuckets", {"Host": "s3.amazonaws.com"}, ips, ua, 0.5 * w),
            Activity(ident, "s3", "GetObject", {"bucketName": "acme-prod-data", "Host": "acme-prod-data.s3.amazonaws.com",
                                                "key": "exports/2026/11/customers-001.csv"}, ips, ua, 2 * w),
            Activity(ident, "lambda", "ListFunctions", None, ips, ua, 0.5 * w, ("us-east-1",)),
            Activity(ident, "cloudwatch", "DescribeAlarms", {"maxRecords": 100}, ips, ua, 0.7 * w, regions),
        ]
        if service_user:
            acts.append(Activity(ident, "s3", "PutObject", {"bucketName": "acme-backups", "key": "db/latest.sql.gz",
                                                            "Host": "acme-backups.s3.amazonaws.com"}, ips, ua, 1.5 * w))
        if user == "etl-pipeline":
            acts.append(Activity(ident, "secretsmanager", "GetSecretValue", {"secretId": "prod/db/master"}, ips, ua, 1.0))
        if user == "alice":
            acts.append(Activity(ident, "iam", "ListAccessKeys", {"userName": "alice"}, ips, ua, 0.2))
            acts.append(Activity(ident, "ec2", "TerminateInstances", {"instancesSet": {"items": [
                {"instanceId": "i-0123456789abcdef0"}]}}, ips, ua, 0.05, ("us-east-1",),
                error=("Client.UnauthorizedOperation", "You are not authorized to perform this operation.")))
    # console sign-ins (no access key)
    for spec in (u for u in USERS if u.console):
        ident = Identity.iam_user(acct, spec.name, sim.user_id(spec.name), None)
        acts.append(Activity(ident, "signin", "ConsoleLogin", None, tuple(CORP_IPS), CONSOLE_UA, 0.05,
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
                             tuple(LAMBDA_IPS), "Boto3/1.34.0 Botocore/1.34.0 exec-env/AWS_Lambda_python3.12", 1.0))
    # the owner's own role session, from the owner's own network: derived from the key, and benign
    owner_key = sim.victim_key.access_key_id
    owner_ident = Identity.iam_user(acct, sim.victim_key.user_name, sim.user_id(sim.victim_key.user_name), owner_key)
    owner_session = mint_key_id(rng, "ASIA")
    benign.append(owner_session)
    acts.append(Activity(owner_ident, "sts", "AssumeRole", {
        "roleArn": f"arn:aws:iam::{acct}:role/ops-admin", "roleSessionName": "nightly-deploy"},
        tuple(OWNER_IPS), OWNER_UA, 0.05,
        response={"credentials": {"accessKeyId": owner_session, "sessionToken": "<redacted-by-simulator>",
                                  "expiration": "Nov 30, 2026, 12:00:00 AM"},
                  "assumedRoleUser": {"assumedRoleId": f"{sim.role_id('ops-admin')}:nightly-deploy",
                                      "arn": f"arn:aws:sts::{acct}:assumed-role/ops-admin/nightly-deploy"}}))
    deploy = Identity.assumed_role(acct, "ops-admin", sim.role_id("ops-admin"), "nightly-deploy", owner_session,
                                   "2026-11-01T00:00:00Z")
    acts.append(Activity(deploy, "lambda", "UpdateFunctionCode", {"functionName": "invoice-renderer", "publish": True},
                         tuple(OWNER_IPS), OWNER_UA, 0.1))
    # AWS services acting on the account's behalf
    for service in ("cloudtrail.amazonaws.com", "config.amazonaws.com"):
        acts.append(Activity(Identity.aws_service(acct, service), "kms", "Decrypt",
                             {"encryptionContext": {"aws:s3:arn": "arn:aws:s3:::acme-cloudtrail-logs"}},
                             (service,), service, 0.4, regions))
    return acts, sorted(set(benign) - {owner_key})


def _upload(out: Path, bucket: str, endpoint: str) -> int:
    s3 = admin_client(endpoint, "s3")
    count = 0
    for path in files_of(out):
        s3.upload_file(str(path), bucket, str(path.relative_to(out)))
        count += 1
    return count


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
) -> SimulationResult:
    """Run `scenario` in `sandbox` (a fresh one if None) and write its logs, truth and alerts to `out`."""
    spec = get_scenario(scenario)
    if events < 0:
        raise InputError(f"--events must be zero or more, not {events}")
    if days <= 0:
        raise InputError(f"--days must be more than zero, not {days}")
    check_out_dir(out)
    started = time.perf_counter()
    # Default end of the span: today 00:00 UTC, so runs on one day with one seed give identical bytes.
    if anchor is None:
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        end = anchor.astimezone(UTC)
    start = end - timedelta(days=days)
    own = sandbox is None
    box = sandbox or MotoSandbox().start()
    try:
        account = seeded_account_of(box) or seed_account(box, seed=seed)
        sim = Simulation(account=account, scenario=spec.name, victim=spec.victim, seed=seed,
                         attack_start=end - ATTACK_BEFORE_END, expected_verdict=spec.expected_verdict)
        spec.run(sim)
        times = sorted(t for _, t, _ in sim.records)
        sim.truth.window = {"start": times[0], "end": times[-1]}
        owner_spec = next(u for u in USERS if u.name == spec.victim)
        sim.truth.owner = {"user_name": spec.victim, "arn": f"arn:aws:iam::{account.account_id}:user/{spec.victim}",
                           "usual_ips": OWNER_IPS, "tags": dict(owner_spec.tags)}
        rng = random.Random(f"{seed}:background")
        activities, benign = background_activities(account, sim, rng)
        attacker_keys = {c["access_key_id"] for c in sim.truth.attacker_credentials}
        sim.truth.benign_credentials = [k for k in benign if k not in attacker_keys]
        layout = LogLayout(out, account.account_id)
        jobs = plan_files(start=start, end=end, background_events=max(0, events - len(sim.records)),
                          region_weights=REGION_WEIGHTS, scenario_records=sim.records, seed=seed)
        files, records, size = write_logs(layout=layout, activities=activities, jobs=jobs, seed=seed,
                                          account_id=account.account_id, processes=processes)
        truth = sim.truth.to_json()
        truth["exposure"] = write_alerts(out / "alerts", truth, spec, seed)
        (out / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
        if upload:
            _upload(out, account.trail_bucket, box.endpoint)
    finally:
        if own:
            box.stop()
    return SimulationResult(spec.name, out, files, records, size, time.perf_counter() - started, truth)
