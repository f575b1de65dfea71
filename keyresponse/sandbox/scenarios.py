"""The scenario library: what an attacker (or, for the false positive, the owner) does with the key.

Each scenario is one function of a `Simulation`, registered in `SCENARIOS`. Every step is a real
call against the sandbox wherever moto implements it (`real=False` marks the few it does not, and
`deny=` the calls a real account would refuse), and each is logged as the CloudTrail record AWS
would write. Attackers come from infrastructure the owner never uses, with their own user agents.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from keyresponse.errors import UnknownScenario
from keyresponse.sandbox.networks import LEGACY_OWNER, LEGACY_OWNER_UA
from keyresponse.sandbox.simulator import Operator, Simulation

#: Attacker infrastructure. Tor exits and bullet-proof hosting; none of it is used by the owner.
IPS = {
    "tor": ["185.220.101.34", "185.220.101.47"],
    "vps": ["45.134.26.19", "193.142.146.50"],
    "vps2": ["5.188.10.77"],
    "scanner": ["146.190.61.22"],
    "miner": ["103.251.167.20", "91.92.249.13"],
}
UA = {
    "kali": "aws-cli/2.13.5 Python/3.11.4 Linux/6.5.0-kali3-amd64 exe/x86_64.kali.2023 prompt/off",
    "boto": ("Boto3/1.28.62 md/Botocore#1.31.62 ua/2.0 os/linux#6.1.0-13-amd64 md/arch#x86_64 lang/python#3.11.6 "
             "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.31.62"),
    "pacu": ("Boto3/1.26.0 Python/3.10.12 Linux/5.15.0-86-generic Botocore/1.29.0 Pacu/1.5.2 "
             "(Rhino Security Labs)"),
    "trufflehog": "TruffleHog",
    "s3browser": "S3 Browser 11.5.7 https://s3browser.com",
    "go": "aws-sdk-go-v2/1.21.0 os/linux lang/go#1.21.1 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.118.0",
    # Attackers sometimes plant markup in what they control; every report must show it inert.
    "markup": 'Mozilla/5.0 (X11; Linux x86_64) <script>alert("owned")</script><img src=x onerror=alert(1)>',
}
#: The owner's own infrastructure (also used by the background generator).
OWNER_IPS = list(LEGACY_OWNER)
OWNER_UA = LEGACY_OWNER_UA
NEW_CI_RUNNER_IPS = ["3.91.171.44"]
ATTACKER_ACCOUNT = "999988887777"


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    victim: str  # the user whose key leaked
    expected_verdict: str  # malicious | suspicious | benign
    run: Callable[[Simulation], None]
    github_path: str = "config/settings.py"


def _recon_sweep(op: Operator, regions: tuple[str, ...] = ("us-east-1", "us-west-2", "eu-west-1")) -> None:
    op.call("sts", "GetCallerIdentity")
    op.call("iam", "ListUsers")
    op.call("iam", "ListRoles")
    op.call("iam", "GetAccountAuthorizationDetails", deny="iam:GetAccountAuthorizationDetails", real=False)
    op.call("iam", "ListAttachedUserPolicies", UserName=op.identity.user_name or "")
    op.call("s3", "ListBuckets")
    for region in regions:
        op.call("ec2", "DescribeInstances", region)
        op.call("ec2", "DescribeSecurityGroups", region)
    op.call("lambda", "ListFunctions")
    op.call("secretsmanager", "ListSecrets")


def recon_only(sim: Simulation) -> None:
    op = sim.leaked_operator(IPS["vps"], UA["kali"])
    _recon_sweep(op)
    for region in ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1", "sa-east-1"):
        op.call("ec2", "DescribeRegions", region)
    for denied in ("iam:ListAccessKeys", "organizations:DescribeOrganization", "guardduty:ListDetectors",
                   "cloudtrail:DescribeTrails", "iam:GetAccountSummary", "sso:ListInstances",
                   "kms:ListKeys", "dynamodb:ListTables", "rds:DescribeDBInstances", "eks:ListClusters"):
        service, action = denied.split(":")
        op.call(service, action, deny=denied, real=False)
    for region in ("ap-northeast-1", "eu-central-1", "ca-central-1"):
        op.call("ec2", "DescribeInstances", region, deny="ec2:DescribeInstances", real=False)


def scanner_validation(sim: Simulation) -> None:
    op = sim.leaked_operator(IPS["scanner"], UA["trufflehog"])
    op.call("sts", "GetCallerIdentity")


def persistence(sim: Simulation) -> None:
    op = sim.leaked_operator(IPS["tor"], UA["markup"])
    op.call("sts", "GetCallerIdentity")
    op.call("iam", "ListUsers")
    op.call("iam", "ListRoles")
    backdoor = "aws-support-sync"
    op.call("iam", "CreateUser", UserName=backdoor)
    sim.persisted("CreateUser", backdoor)
    sim.created("iam:user", backdoor, "us-east-1")
    op.call("iam", "AttachUserPolicy", UserName=backdoor, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    sim.persisted("AttachUserPolicy", backdoor)
    op.call("iam", "CreateLoginProfile", UserName=backdoor, Password="Backdoor-Passw0rd!-2026")  # noqa: S106
    sim.persisted("CreateLoginProfile", backdoor)
    device = op.call("iam", "CreateVirtualMFADevice", VirtualMFADeviceName=f"{backdoor}-mfa")["VirtualMFADevice"]
    sim.created("iam:mfa-device", device["SerialNumber"], "us-east-1")
    sim.persisted("CreateVirtualMFADevice", f"{backdoor}-mfa")
    op.call("iam", "EnableMFADevice", UserName=backdoor, SerialNumber=device["SerialNumber"],
            AuthenticationCode1="314159", AuthenticationCode2="265358")
    sim.persisted("EnableMFADevice", backdoor)
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{sim.account.account_id}:root"},
         "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ATTACKER_ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    op.call("iam", "UpdateAssumeRolePolicy", RoleName="ops-admin", PolicyDocument=json.dumps(trust))
    sim.persisted("UpdateAssumeRolePolicy", "ops-admin")
    second = op.create_access_key_for(backdoor, ips=IPS["vps2"], user_agent=UA["boto"])
    second.call("sts", "GetCallerIdentity")
    second.call("iam", "ListUsers")
    second.call("s3", "ListBuckets")


def cryptomining(sim: Simulation) -> None:
    op = sim.leaked_operator(IPS["miner"], UA["go"])
    op.call("sts", "GetCallerIdentity")
    op.call("ec2", "DescribeRegions")
    for region in ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"):
        op.call("ec2", "DescribeAccountAttributes", region)
        key_name = f"xmrig-{region}"
        op.call("ec2", "CreateKeyPair", region, KeyName=key_name)
        sim.persisted("CreateKeyPair", key_name)
        sim.created("ec2:key-pair", key_name, region)
        group = op.call("ec2", "DescribeSecurityGroups", region,
                        Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
        op.call("ec2", "AuthorizeSecurityGroupIngress", region, GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        sim.persisted("AuthorizeSecurityGroupIngress", group)
        image = op.client("ec2", region).describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
        if region == "ap-southeast-1":  # one region refuses the size, as quotas do
            op.call("ec2", "RunInstances", region, ImageId=image, MinCount=8, MaxCount=8,
                    InstanceType="p3.16xlarge", KeyName=key_name,
                    fail=("Client.VcpuLimitExceeded", "You have requested more vCPU capacity than your current "
                          "vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to."))
            op.call("ec2", "RunInstances", region, ImageId=image, MinCount=2, MaxCount=2,
                    InstanceType="c5.4xlarge", KeyName=key_name)
        else:
            op.call("ec2", "RunInstances", region, ImageId=image, MinCount=3, MaxCount=3,
                    InstanceType="c5.4xlarge", KeyName=key_name)
        made = json.loads(sim.records[-1][2])["responseElements"]["instancesSet"]["items"]
        ids = [item["instanceId"] for item in made]
        for instance_id in ids:
            sim.created("ec2:instance", instance_id, region)
        op.call("ec2", "ModifyInstanceAttribute", region, InstanceId=ids[0], DisableApiTermination={"Value": True})
        sim.persisted("ModifyInstanceAttribute", ids[0])


def data_exfiltration(sim: Simulation) -> None:
    op = sim.leaked_operator(IPS["vps"], UA["s3browser"])
    op.call("sts", "GetCallerIdentity")
    buckets = [b["Name"] for b in op.call("s3", "ListBuckets")["Buckets"]]
    for _round in range(4):
        for bucket in buckets:
            listed = op.call("s3", "ListObjectsV2", Bucket=bucket).get("Contents", [])
            for obj in listed:
                op.call("s3", "GetObject", Bucket=bucket, Key=obj["Key"])
    secrets = op.call("secretsmanager", "ListSecrets")["SecretList"]
    for secret in secrets:
        op.call("secretsmanager", "GetSecretValue", SecretId=secret["Name"])
    op.call("ssm", "DescribeParameters")
    op.call("ssm", "GetParameters", Names=["/prod/app/db-password", "/prod/payments/api-key"], WithDecryption=True)
    op.call("kms", "Decrypt", deny="kms:Decrypt", real=False, CiphertextBlob=b"opaque")


def pivot_chain(sim: Simulation) -> None:
    first = sim.leaked_operator(IPS["vps"], UA["kali"])
    first.call("sts", "GetCallerIdentity")
    first.call("iam", "ListUsers")
    # hop 1: a key for another user
    second = first.create_access_key_for("etl-pipeline", ips=IPS["vps2"], user_agent=UA["boto"])
    second.call("sts", "GetCallerIdentity")
    # hop 2: sessions from that key
    session = second.get_session_token()
    session.call("ec2", "DescribeInstances")
    session.call("sts", "GetCallerIdentity")
    role = second.assume_role("ops-admin", "maintenance", ips=IPS["tor"], user_agent=UA["pacu"])
    role.call("iam", "ListRoles")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", "import os\ndef handler(e, c):\n    return dict(os.environ)\n")
    account = sim.account.account_id
    role.call("lambda", "CreateFunction", FunctionName="cost-optimizer", Runtime="python3.12",
              Role=f"arn:aws:iam::{account}:role/lambda-exec", Handler="index.handler", Code={"ZipFile": code.getvalue()})
    sim.persisted("CreateFunction20150331", "cost-optimizer")
    sim.created("lambda:function", "cost-optimizer", "us-east-1")
    # hop 3: the role session makes a key for a third user; that key mints a federation token
    third = role.create_access_key_for("svc-reporting", ips=IPS["tor"], user_agent=UA["markup"])
    third.call("s3", "ListBuckets")
    federated = third.get_federation_token("reporting-sync", ips=IPS["vps"], user_agent=UA["boto"])
    federated.call("s3", "ListBuckets")
    federated.call("s3", "GetObject", Bucket="acme-customer-pii", Key="records/batch-000.json")
    federated.call("s3", "GetObject", Bucket="acme-customer-pii", Key="records/batch-001.json")


def llmjacking_ses(sim: Simulation) -> None:
    op = sim.leaked_operator(IPS["vps2"], UA["boto"])
    op.call("sts", "GetCallerIdentity")
    op.call("bedrock", "GetModelInvocationLoggingConfiguration", real=False)
    op.call("bedrock", "ListFoundationModels", real=False)
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4096,
                       "messages": [{"role": "user", "content": "Write a story"}]}).encode()
    for _ in range(12):
        op.call("bedrock-runtime", "InvokeModel", modelId="anthropic.claude-3-sonnet-20240229-v1:0", body=body,
                contentType="application/json", read_only=True)
    op.call("ses", "GetSendQuota")
    op.call("ses", "ListIdentities")
    op.call("ses", "GetAccount", real=False, read_only=True)
    op.call("sesv2", "PutAccountDetails", deny="ses:PutAccountDetails", real=False)


def false_positive(sim: Simulation) -> None:
    owner = sim.owner_operator(NEW_CI_RUNNER_IPS, OWNER_UA)
    owner.call("sts", "GetCallerIdentity")
    owner.call("s3", "PutObject", Bucket="acme-app-config", Key="app/build-2026-11.txt", Body=b"build ok\n")
    owner.call("ec2", "DescribeInstances")
    owner.call("lambda", "ListFunctions")
    owner.call("s3", "GetObject", Bucket="acme-app-config", Key="app/config.yaml")


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("recon-only", "GetCallerIdentity, List*/Describe* sweeps across regions, many AccessDenied errors.",
             "svc-reporting", "malicious", recon_only),
    Scenario("scanner-validation", "One GetCallerIdentity from a secret scanner (TruffleHog): validation, not abuse.",
             "ci-runner", "suspicious", scanner_validation),
    Scenario("persistence", "Backdoor user with AdministratorAccess, login profile and attacker MFA; a key for it; "
             "a trust-policy backdoor on ops-admin.", "app-deployer", "malicious", persistence),
    Scenario("cryptomining", "Key pairs, open SSH ingress and RunInstances in four regions; termination protection.",
             "app-deployer", "malicious", cryptomining),
    Scenario("data-exfiltration", "ListBuckets/ListObjects/GetObject at volume, GetSecretValue, SSM decryption.",
             "etl-pipeline", "malicious", data_exfiltration),
    Scenario("pivot-chain", "Leaked key → key for etl-pipeline → session token and ops-admin role → Lambda, a key "
             "for svc-reporting → federation token: four hops of derived credentials.",
             "app-deployer", "malicious", pivot_chain),
    Scenario("llmjacking-ses", "Bedrock InvokeModel and logging checks, SES quota and identities.",
             "marketing-sync", "malicious", llmjacking_ses),
    Scenario("false-positive", "The owner's own CI from a new runner IP, normal calls only.",
             "ci-runner", "benign", false_positive),
)}


def no_attack(sim: Simulation) -> None:
    """Nobody but the owner: the background's own use of the key is all there is."""


#: No-attack controls: a benign key investigated directly. Not in SCENARIOS (the attacks), which the
#: tests play and check one by one; the robustness grid (`keyresponse.sandbox.grid`) runs them.
CONTROLS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("no-attack", "Control: nobody but the owner uses the key; investigated directly.",
             "app-deployer", "benign", no_attack),
)}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS.get(name) or CONTROLS[name]
    except KeyError:
        raise UnknownScenario(f"unknown scenario {name!r}; choose one of: "
                              f"{', '.join([*SCENARIOS, *CONTROLS])}") from None
