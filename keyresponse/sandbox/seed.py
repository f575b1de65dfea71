"""Seed the sandbox with a realistic AWS account, through the real API of the moto server.

The account is data (the tables below), applied by one function. What was planted for the
preventive scan (old keys, unused keys, two active keys, console users without MFA) is returned
in `SeededAccount.planted`, so tests can check a scan finds exactly that and nothing else.

Ages are relative to `now`; moto stamps everything with the wall clock, so ages are set through
the sandbox's `/_keyresponse/backdate` extension.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue, TypeAdapter

from keyresponse.sandbox.server import MotoSandbox, admin_client

ACCOUNT_ID = "123456789012"
#: The partner account trusted by the cross-account role.
PARTNER_ACCOUNT_ID = "210987654321"
REGIONS = ("us-east-1", "eu-west-1")
BREAK_GLASS_USER = "break-glass"
RESPONDER_USER = "ir-responder"

_MANAGED = "arn:aws:iam::aws:policy/"

#: group -> managed policies attached, inline policy actions
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "admins": ([_MANAGED + "AdministratorAccess"], []),
    "developers": ([_MANAGED + "ReadOnlyAccess"], ["lambda:*", "logs:*", "s3:PutObject"]),
    "ops": ([_MANAGED + "PowerUserAccess"], ["iam:PassRole"]),
    "data": ([_MANAGED + "AmazonS3ReadOnlyAccess"], ["athena:*", "glue:Get*"]),
    "finance": ([_MANAGED + "job-function/Billing"], []),
    "ci": ([], ["s3:*", "lambda:UpdateFunctionCode", "ecr:*", "cloudformation:*"]),
    "security": ([_MANAGED + "SecurityAudit"], []),
}


@dataclass(frozen=True)
class UserSpec:
    """One IAM user. Ages are in days before `now`; `None` last-use means never used."""

    name: str
    groups: tuple[str, ...] = ()
    keys: tuple[tuple[int, int | None], ...] = ((20, 1),)  # (key age, days since last use)
    console: bool = False
    mfa: bool = False
    inline: tuple[str, ...] = ()
    managed: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


def _people() -> list[UserSpec]:
    """36 users. The odd ones out are named in the comments; everything else is healthy."""
    return [
        # healthy console users, with MFA, one fresh key in use
        *(UserSpec(n, ("developers",), console=True, mfa=True, tags=(("team", "platform"),))
          for n in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")),
        *(UserSpec(n, ("data",), console=True, mfa=True, tags=(("team", "analytics"),))
          for n in ("ivan", "judy", "mallory", "niaj")),
        *(UserSpec(n, ("ops",), console=True, mfa=True, tags=(("team", "sre"),))
          for n in ("olivia", "peggy", "rupert", "sybil")),
        *(UserSpec(n, ("finance",), keys=(), console=True, mfa=True, tags=(("team", "finance"),))
          for n in ("trent", "uma", "victor")),
        UserSpec("walter", ("security",), console=True, mfa=True),
        UserSpec("wendy", ("admins",), keys=(), console=True, mfa=True),
        # service users: keys only, fresh and used
        UserSpec("svc-reporting", ("data",), tags=(("owner", "judy@example.com"),)),
        UserSpec("svc-backup", (), inline=("s3:GetObject", "s3:PutObject", "s3:ListBucket"),
                 tags=(("owner", "olivia@example.com"),)),
        UserSpec("app-deployer", ("ops", "ci"), tags=(("owner", "peggy@example.com"),)),
        UserSpec("ci-runner", ("ci",), managed=(_MANAGED + "AmazonEC2ReadOnlyAccess",),
                 tags=(("owner", "frank@example.com"),)),
        UserSpec("etl-pipeline", ("data",), inline=("s3:*", "secretsmanager:GetSecretValue"),
                 tags=(("owner", "ivan@example.com"),)),
        # planted for the preventive scan
        UserSpec("legacy-integration", (), keys=((540, 3),), inline=("s3:*",),
                 tags=(("owner", "rupert@example.com"),)),                    # long-lived (540 d)
        UserSpec("old-monitoring", ("security",), keys=((400, 120),),
                 tags=(("owner", "walter@example.com"),)),                    # long-lived and unused
        UserSpec("forgotten-test", (), keys=((200, None),)),                  # never used, 200 d old
        UserSpec("marketing-sync", (), keys=((80, 70),), inline=("ses:*",)),  # unused for 70 d
        UserSpec("dual-key-svc", ("ci",), keys=((30, 1), (10, 2))),           # two active keys
        UserSpec("contractor-kim", ("developers",), keys=((15, 2),), console=True, mfa=False),  # no MFA
        UserSpec("intern-lee", ("developers",), keys=((5, 1),), console=True, mfa=False),      # no MFA
        UserSpec("new-hire-sam", ("developers",), keys=((3, None),), console=True, mfa=True),  # fresh, unused: fine
        # identities with a role in the response
        UserSpec(BREAK_GLASS_USER, ("admins",), keys=(), console=True, mfa=True),
        UserSpec(RESPONDER_USER, ("security",), keys=((10, 0),), managed=(_MANAGED + "IAMFullAccess",)),
    ]


USERS: list[UserSpec] = _people()

ROLES: dict[str, dict[str, Any]] = {
    "ops-admin": {"principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "managed": [_MANAGED + "AdministratorAccess"]},
    "lambda-exec": {"principal": {"Service": "lambda.amazonaws.com"},
                    "managed": [_MANAGED + "service-role/AWSLambdaBasicExecutionRole"]},
    "data-pipeline": {"principal": {"Service": "glue.amazonaws.com"}, "managed": [_MANAGED + "AmazonS3ReadOnlyAccess"]},
    "partner-audit": {"principal": {"AWS": f"arn:aws:iam::{PARTNER_ACCOUNT_ID}:root"},
                      "managed": [_MANAGED + "SecurityAudit"], "external_id": "partner-7781"},
    "ec2-app": {"principal": {"Service": "ec2.amazonaws.com"}, "managed": [_MANAGED + "AmazonS3ReadOnlyAccess"]},
}

BUCKETS: dict[str, list[str]] = {
    "acme-prod-data": [f"exports/2026/11/customers-{i:03d}.csv" for i in range(12)],
    "acme-customer-pii": [f"records/batch-{i:03d}.json" for i in range(8)],
    "acme-app-config": ["app/config.yaml", "app/feature-flags.json"],
    "acme-backups": [f"db/backup-2026-11-{d:02d}.sql.gz" for d in range(1, 6)],
}
EVIDENCE_BUCKET = "acme-ir-evidence"
TRAIL_BUCKET = "acme-cloudtrail-logs"
SECRETS = {"prod/db/master": "not-a-real-password-1", "prod/stripe/api-key": "sk_test_not_real",
           "prod/github/deploy-token": "ghp_not_a_real_token"}
PARAMETERS = {"/prod/app/db-password": ("SecureString", "not-real-either"),
              "/prod/app/feature-flags": ("String", '{"beta": false}'),
              "/prod/payments/api-key": ("SecureString", "not-real-3")}
FUNCTIONS = ("invoice-renderer", "thumbnailer", "nightly-report")


@dataclass
class SeededKey:
    user_name: str
    access_key_id: str
    secret_access_key: str
    created_at: str
    last_used_at: str | None


@dataclass
class SeededAccount:
    """What the seed created: enough for scenarios, tests and the demo to find their way."""

    account_id: str
    endpoint: str
    now: str
    users: list[str]
    keys: list[SeededKey]
    roles: list[str]
    buckets: list[str]
    evidence_bucket: str
    trail_bucket: str
    instances: dict[str, list[str]]
    functions: list[str]
    secrets: list[str]
    parameters: list[str]
    protected_principals: list[str]
    responder: SeededKey
    planted: dict[str, list[str]] = field(default_factory=dict)

    def key_of(self, user_name: str) -> SeededKey:
        """The first access key of a user."""
        for key in self.keys:
            if key.user_name == user_name:
                return key
        raise KeyError(f"user {user_name!r} has no access key in the seed")

    def to_json(self) -> dict[str, JsonValue]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, JsonValue]) -> SeededAccount:
        """What `to_json` wrote, checked field by field (its keys as `SeededKey`s)."""
        return TypeAdapter(cls).validate_python(data)


def _policy(actions: list[str] | tuple[str, ...]) -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]})


def _trust(principal: dict[str, Any], external_id: str | None = None) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def planted_cases(now: datetime, max_age_days: int = 90, unused_days: int = 45) -> dict[str, list[str]]:
    """The preventive-scan findings the seed plants, derived from `USERS` by the scan's own rules."""
    found: dict[str, list[str]] = {"long_lived": [], "unused": [], "never_used": [],
                                   "two_active_keys": [], "console_without_mfa": []}
    for user in USERS:
        for age, last_use in user.keys:
            if age > max_age_days:
                found["long_lived"].append(user.name)
            if last_use is None and age > unused_days:
                found["never_used"].append(user.name)
            elif last_use is not None and last_use > unused_days:
                found["unused"].append(user.name)
        if len(user.keys) >= 2:
            found["two_active_keys"].append(user.name)
        if user.console and not user.mfa and user.keys:
            found["console_without_mfa"].append(user.name)
    return found


def seed_account(sandbox: MotoSandbox, *, seed: int = 7, now: datetime | None = None) -> SeededAccount:
    """Create the account in `sandbox` and return what was made. Deterministic for one `seed`."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    sandbox.seed_random(seed)
    iam = admin_client(sandbox.endpoint, "iam")

    for group, (managed, actions) in GROUPS.items():
        iam.create_group(GroupName=group)
        for arn in managed:
            iam.attach_group_policy(GroupName=group, PolicyArn=arn)
        if actions:
            iam.put_group_policy(GroupName=group, PolicyName=f"{group}-inline", PolicyDocument=_policy(actions))

    keys: list[SeededKey] = []
    for user in USERS:
        iam.create_user(UserName=user.name, Tags=[{"Key": k, "Value": v} for k, v in user.tags])
        for group in user.groups:
            iam.add_user_to_group(GroupName=group, UserName=user.name)
        if user.inline:
            iam.put_user_policy(UserName=user.name, PolicyName=f"{user.name}-inline",
                                PolicyDocument=_policy(user.inline))
        for arn in user.managed:
            iam.attach_user_policy(UserName=user.name, PolicyArn=arn)
        if user.console:
            iam.create_login_profile(UserName=user.name, Password="Sandbox-only-Passw0rd!")  # noqa: S106
            sandbox.backdate(user_name=user.name, password_last_used_at=_iso(now - timedelta(days=2)))
        if user.mfa:
            device = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{user.name}-mfa")["VirtualMFADevice"]
            iam.enable_mfa_device(UserName=user.name, SerialNumber=device["SerialNumber"],
                                  AuthenticationCode1="123456", AuthenticationCode2="654321")
        sandbox.backdate(user_name=user.name, user_created_at=_iso(now - timedelta(days=600)))
        for age, last_use in user.keys:
            made = iam.create_access_key(UserName=user.name)["AccessKey"]
            created = now - timedelta(days=age)
            used = None if last_use is None else now - timedelta(days=last_use, hours=1)
            sandbox.backdate(user_name=user.name, access_key_id=made["AccessKeyId"], created_at=_iso(created),
                             **({"last_used_at": _iso(used), "last_used_service": "s3"} if used else {}))
            keys.append(SeededKey(user.name, made["AccessKeyId"], made["SecretAccessKey"], _iso(created),
                                  _iso(used) if used else None))

    for role, spec in ROLES.items():
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=_trust(spec["principal"], spec.get("external_id")),
                        Tags=[{"Key": "managed-by", "Value": "platform"}])
        for arn in spec["managed"]:
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    iam.create_instance_profile(InstanceProfileName="ec2-app")
    iam.add_role_to_instance_profile(InstanceProfileName="ec2-app", RoleName="ec2-app")

    s3 = admin_client(sandbox.endpoint, "s3")
    for bucket, objects in BUCKETS.items():
        s3.create_bucket(Bucket=bucket)
        for key in objects:
            s3.put_object(Bucket=bucket, Key=key, Body=f"sandbox object {bucket}/{key}\n".encode())
    s3.create_bucket(Bucket=TRAIL_BUCKET)
    s3.create_bucket(Bucket=EVIDENCE_BUCKET, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=EVIDENCE_BUCKET, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 365}}})

    secrets = admin_client(sandbox.endpoint, "secretsmanager")
    for name, value in SECRETS.items():
        secrets.create_secret(Name=name, SecretString=value)
    ssm = admin_client(sandbox.endpoint, "ssm")
    for name, (kind, value) in PARAMETERS.items():
        ssm.put_parameter(Name=name, Type=kind, Value=value)

    instances: dict[str, list[str]] = {}
    for region, count in zip(REGIONS, (3, 2), strict=True):
        ec2 = admin_client(sandbox.endpoint, "ec2", region)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        made = ec2.run_instances(ImageId=image, MinCount=count, MaxCount=count, InstanceType="t3.medium",
                                 TagSpecifications=[{"ResourceType": "instance",
                                                     "Tags": [{"Key": "app", "Value": "web"}]}])
        instances[region] = [i["InstanceId"] for i in made["Instances"]]

    lam = admin_client(sandbox.endpoint, "lambda")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return {'ok': True}\n")
    for name in FUNCTIONS:
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler="index.handler",
                            Role=f"arn:aws:iam::{ACCOUNT_ID}:role/lambda-exec", Code={"ZipFile": code.getvalue()})

    responder = next(k for k in keys if k.user_name == RESPONDER_USER)
    account = SeededAccount(
        account_id=ACCOUNT_ID, endpoint=sandbox.endpoint, now=_iso(now),
        users=[u.name for u in USERS], keys=keys, roles=list(ROLES),
        buckets=[*BUCKETS, TRAIL_BUCKET, EVIDENCE_BUCKET], evidence_bucket=EVIDENCE_BUCKET,
        trail_bucket=TRAIL_BUCKET, instances=instances, functions=list(FUNCTIONS), secrets=list(SECRETS),
        parameters=list(PARAMETERS), protected_principals=[BREAK_GLASS_USER], responder=responder,
        planted=planted_cases(now),
    )
    sandbox.store("seed", account.to_json())
    return account


def seeded_account_of(sandbox: MotoSandbox) -> SeededAccount | None:
    """The account a previous `seed_account` made in this sandbox, if any."""
    data = sandbox.load("seed")
    return SeededAccount.from_json(data) if isinstance(data, dict) and data else None
