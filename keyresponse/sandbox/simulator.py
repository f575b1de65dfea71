"""The attack simulator's machinery: a simulated clock, operators that make REAL calls against the
sandbox and log each one as the CloudTrail record AWS would write, and the ground truth.

A scenario (see `scenarios.py`) is a function of a `Simulation`: it takes the leaked key, acts as
the attacker through `Operator.call`, and declares what it did (`sim.persisted`, `sim.created`) so
tests can check an investigation against the truth.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import JsonValue

from keyresponse.sandbox.cloudtrail import Identity, build_record, dumps, event_name, iso
from keyresponse.sandbox.seed import SeededAccount
from keyresponse.sandbox.server import admin_client

_B32 = string.ascii_uppercase + "234567"
_NO_RETRY = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60)


def mint_key_id(rng: random.Random, prefix: str) -> str:
    """An access key id shaped like AWS's (prefix + 16 base32 characters)."""
    return prefix + "".join(rng.choices(_B32, k=16))


@dataclass
class Credentials:
    """What a real call is signed with (moto's), and the key id CloudTrail shows for it."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    logged_key_id: str | None = None

    @property
    def shown(self) -> str:
        return self.logged_key_id or self.access_key_id


@dataclass
class GroundTruth:
    scenario: str
    account_id: str
    compromised_access_key_id: str
    expected_verdict: str
    window: dict[str, str] = field(default_factory=dict)
    attacker_ips: list[str] = field(default_factory=list)
    attacker_user_agents: list[str] = field(default_factory=list)
    attacker_credentials: list[dict[str, str]] = field(default_factory=list)
    attacker_principals: list[str] = field(default_factory=list)
    persistence: list[dict[str, str]] = field(default_factory=list)
    resources_created: list[dict[str, str]] = field(default_factory=list)
    benign_credentials: list[str] = field(default_factory=list)
    owner: dict[str, Any] = field(default_factory=dict)
    exposure: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "account_id": self.account_id,
            "compromised_access_key_id": self.compromised_access_key_id, "window": self.window,
            "attacker_ips": self.attacker_ips, "attacker_user_agents": self.attacker_user_agents,
            "attacker_credentials": self.attacker_credentials, "attacker_principals": self.attacker_principals,
            "persistence": self.persistence, "resources_created": self.resources_created,
            "benign_credentials": self.benign_credentials, "expected_verdict": self.expected_verdict,
            "owner": self.owner, "exposure": self.exposure,
        }


class Clock:
    """Simulated time: each call moves it on by a few seconds (seeded)."""

    def __init__(self, start: datetime, rng: random.Random) -> None:
        self.now = start
        self.rng = rng

    def tick(self, low: int = 2, high: int = 25) -> str:
        self.now += timedelta(seconds=self.rng.randint(low, high))
        return iso(self.now)

    def wait(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)


class Simulation:
    """One scenario run: the sandbox endpoint, the seeded account, a clock, the records, the truth."""

    def __init__(self, *, account: SeededAccount, scenario: str, victim: str, seed: int, attack_start: datetime,
                 expected_verdict: str) -> None:
        self.account = account
        self.endpoint = account.endpoint
        self.rng = random.Random(f"{seed}:{scenario}:attack")
        self.clock = Clock(attack_start, self.rng)
        self.records: list[tuple[str, str, str]] = []  # (region, eventTime, JSON)
        #: each record as a dict, and whether the attacker made it (the styles of `styles.py` rework these)
        self.calls: list[tuple[dict[str, Any], bool]] = []
        self.victim_key = account.key_of(victim)
        self.truth = GroundTruth(scenario, account.account_id, self.victim_key.access_key_id, expected_verdict)
        self._user_ids: dict[str, str] = {}
        self._role_ids: dict[str, str] = {}
        self._admin = admin_client(self.endpoint, "iam")

    # -- AWS plumbing ------------------------------------------------------------------------
    def _client(self, service: str, region: str, creds: Credentials) -> Any:
        # boto3-stubs type each service name as a Literal and have no overload for a name known only at run time
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint,  # type: ignore[call-overload]
                            config=_NO_RETRY, aws_access_key_id=creds.access_key_id,
                            aws_secret_access_key=creds.secret_access_key, aws_session_token=creds.session_token)

    def user_id(self, user_name: str) -> str:
        if user_name not in self._user_ids:
            self._user_ids[user_name] = self._admin.get_user(UserName=user_name)["User"]["UserId"]
        return self._user_ids[user_name]

    def role_id(self, role_name: str) -> str:
        if role_name not in self._role_ids:
            self._role_ids[role_name] = self._admin.get_role(RoleName=role_name)["Role"]["RoleId"]
        return self._role_ids[role_name]

    # -- actors ------------------------------------------------------------------------------
    def _victim_operator(self, ips: list[str], user_agent: str, *, attacker: bool) -> Operator:
        key = self.victim_key
        identity = Identity.iam_user(self.account.account_id, key.user_name, self.user_id(key.user_name),
                                     key.access_key_id)
        return Operator(self, identity, Credentials(key.access_key_id, key.secret_access_key), ips, user_agent,
                        attacker=attacker)

    def leaked_operator(self, ips: list[str], user_agent: str) -> Operator:
        """The attacker, holding the leaked key."""
        op = self._victim_operator(ips, user_agent, attacker=True)
        self.attacker_credential(op.creds.access_key_id, "original", None, None, op.identity.principal_arn)
        return op

    def owner_operator(self, ips: list[str], user_agent: str) -> Operator:
        """The key's legitimate owner (the false positive)."""
        return self._victim_operator(ips, user_agent, attacker=False)

    def attacker_credential(self, key_id: str, kind: str, created_by: str | None, parent: str | None,
                            principal_arn: str) -> None:
        self.truth.attacker_credentials.append({"access_key_id": key_id, "kind": kind,
                                                "created_by_event": created_by or "",
                                                "parent": parent or "", "principal_arn": principal_arn})
        if principal_arn not in self.truth.attacker_principals:
            self.truth.attacker_principals.append(principal_arn)

    def persisted(self, event: str, resource: str) -> None:
        self.truth.persistence.append({"event_name": event, "resource": resource})

    def created(self, kind: str, ident: str, region: str) -> None:
        """`kind` uses the `resources_created` query's vocabulary (service:kind, e.g. ec2:instance)."""
        self.truth.resources_created.append({"type": kind, "id": ident, "region": region})

    def log(self, record: dict[str, JsonValue], *, attacker: bool = True) -> None:
        self.records.append((str(record["awsRegion"]), str(record["eventTime"]), dumps(record)))
        self.calls.append((record, attacker))


def _response_elements(service: str, operation: str, response: dict[str, Any], params: dict[str, Any],
                       when: str, logged_key: str | None) -> dict[str, Any] | None:
    """What CloudTrail keeps of a response: ids of what was made, never secrets."""
    def creds(c: dict[str, Any]) -> dict[str, Any]:
        issued = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        expires = issued + timedelta(seconds=int(params.get("DurationSeconds", 3600)))
        return {"accessKeyId": logged_key or c["AccessKeyId"], "sessionToken": "<redacted-by-simulator>",
                "expiration": expires.strftime("%b %d, %Y, %I:%M:%S %p")}

    if operation == "CreateAccessKey":
        k = response["AccessKey"]
        return {"accessKey": {"accessKeyId": k["AccessKeyId"], "status": k["Status"], "userName": k["UserName"],
                              "createDate": when}}
    if operation in ("GetSessionToken", "AssumeRole", "GetFederationToken"):
        out: dict[str, Any] = {"credentials": creds(response["Credentials"])}
        if "AssumedRoleUser" in response:
            out["assumedRoleUser"] = {"assumedRoleId": response["AssumedRoleUser"]["AssumedRoleId"],
                                      "arn": response["AssumedRoleUser"]["Arn"]}
        if "FederatedUser" in response:
            out["federatedUser"] = {"federatedUserId": response["FederatedUser"]["FederatedUserId"],
                                    "arn": response["FederatedUser"]["Arn"]}
            out["packedPolicySize"] = response.get("PackedPolicySize", 0)
        return out
    if operation == "CreateUser":
        u = response["User"]
        return {"user": {"path": u["Path"], "userName": u["UserName"], "userId": u["UserId"], "arn": u["Arn"],
                         "createDate": when}}
    if operation == "CreateLoginProfile":
        return {"loginProfile": {"userName": params["UserName"], "createDate": when, "passwordResetRequired": False}}
    if operation == "CreateVirtualMFADevice":
        return {"virtualMFADevice": {"serialNumber": response["VirtualMFADevice"]["SerialNumber"]}}
    if operation == "RunInstances":
        return {"requestId": response["ResponseMetadata"]["RequestId"], "reservationId": response["ReservationId"],
                "ownerId": response["OwnerId"], "groupSet": {},
                "instancesSet": {"items": [{"instanceId": i["InstanceId"], "imageId": i["ImageId"],
                                            "instanceType": i["InstanceType"],
                                            "instanceState": {"code": 0, "name": "pending"},
                                            "launchTime": 0} for i in response["Instances"]]}}
    if operation == "CreateKeyPair":
        return {"requestId": response["ResponseMetadata"]["RequestId"], "keyName": response["KeyName"],
                "keyFingerprint": response["KeyFingerprint"], "keyPairId": response.get("KeyPairId", "")}
    if operation == "CreateFunction":
        return {"functionName": response["FunctionName"], "functionArn": response["FunctionArn"],
                "runtime": response.get("Runtime"), "role": response.get("Role"), "handler": response.get("Handler"),
                "state": "Pending"}
    if operation == "AuthorizeSecurityGroupIngress":
        perm = params["IpPermissions"][0]
        return {"requestId": response["ResponseMetadata"]["RequestId"], "_return": True,
                "securityGroupRuleSet": {"items": [
                    {"groupOwnerId": "", "groupId": params["GroupId"],
                     "securityGroupRuleId": (response.get("SecurityGroupRules") or [{}])[0].get("SecurityGroupRuleId", ""),
                     "isEgress": False, "ipProtocol": perm["IpProtocol"], "fromPort": perm["FromPort"],
                     "toPort": perm["ToPort"], "cidrIpv4": perm["IpRanges"][0]["CidrIp"]}]}}
    if operation == "CreateSecurityGroup":
        return {"requestId": response["ResponseMetadata"]["RequestId"], "_return": True, "groupId": response["GroupId"]}
    if operation == "ModifyInstanceAttribute":
        return {"requestId": response["ResponseMetadata"]["RequestId"], "_return": True}
    return None


def _request_parameters(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
    from keyresponse.sandbox.cloudtrail import lower_first

    if service == "s3":
        out: dict[str, Any] = {}
        if "Bucket" in params:
            out = {"bucketName": params["Bucket"], "Host": f"{params['Bucket']}.s3.amazonaws.com"}
        if "Key" in params:
            out["key"] = params["Key"]
        if "Prefix" in params:
            out["prefix"] = params["Prefix"]
        return out or {"Host": "s3.amazonaws.com"}
    if operation == "RunInstances":
        return {"instancesSet": {"items": [{"imageId": params["ImageId"], "minCount": params["MinCount"],
                                            "maxCount": params["MaxCount"], "keyName": params.get("KeyName")}]},
                "instanceType": params.get("InstanceType"), "blockDeviceMapping": {}, "monitoring": {"enabled": False},
                "disableApiTermination": False, "clientToken": None}
    if operation == "AuthorizeSecurityGroupIngress":
        perm = params["IpPermissions"][0]
        return {"groupId": params["GroupId"], "ipPermissions": {"items": [{
            "ipProtocol": perm["IpProtocol"], "fromPort": perm["FromPort"], "toPort": perm["ToPort"],
            "groups": {}, "ipRanges": {"items": [{"cidrIp": r["CidrIp"]} for r in perm["IpRanges"]]},
            "ipv6Ranges": {}, "prefixListIds": {}}]}}
    if operation == "CreateFunction":
        slim = {k: v for k, v in params.items() if k != "Code"}
        return cast(dict[str, Any], lower_first(slim))  # a dict in, a dict out
    if operation == "InvokeModel":
        return {"modelId": params["modelId"]}
    return lower_first(params) if params else None


class Operator:
    """One identity of the attacker (or of the owner): real calls against the sandbox, each logged."""

    def __init__(self, sim: Simulation, identity: Identity, creds: Credentials, ips: list[str],
                 user_agent: str, *, attacker: bool = True) -> None:
        self.sim = sim
        self.identity = identity
        self.creds = creds
        self.ips = ips
        self.user_agent = user_agent
        self.attacker = attacker
        self._clients: dict[tuple[str, str], Any] = {}
        if attacker:
            truth = sim.truth
            truth.attacker_ips.extend(ip for ip in ips if ip not in truth.attacker_ips)
            if user_agent not in truth.attacker_user_agents:
                truth.attacker_user_agents.append(user_agent)

    def client(self, service: str, region: str) -> Any:
        if (service, region) not in self._clients:
            self._clients[service, region] = self.sim._client(service, region, self.creds)
        return self._clients[service, region]

    def call(self, service: str, operation: str, region: str = "us-east-1", *, deny: str | None = None,
             fail: tuple[str, str] | None = None, real: bool = True, read_only: bool | None = None,
             **params: object) -> dict[str, Any]:
        """Call `operation` for real (unless `deny`, `fail` or not `real`) and log it as CloudTrail would.

        `deny` logs an AccessDenied for that IAM action instead of calling (moto's authorization is off,
        so a denial cannot happen for real here); `fail` logs that (code, message) instead of calling,
        e.g. a quota error; `real=False` logs a success without calling, for APIs moto lacks.
        """
        when = self.sim.clock.tick()
        response: dict[str, Any] = {}
        error: tuple[str, str] | None = fail
        if error:
            pass
        elif deny:
            code = "Client.UnauthorizedOperation" if service == "ec2" else "AccessDenied"
            error = (code, f"User: {self.identity.arn} is not authorized to perform: {deny} "
                           "because no identity-based policy allows the action")
        elif real:
            method = getattr(self.client(service, region), _snake(operation))
            try:
                response = method(**params)
            except ClientError as exc:
                err = exc.response.get("Error", {})
                error = (str(err.get("Code", "Unknown")), str(err.get("Message", "")))
        logged_key = None
        if not error and operation in ("GetSessionToken", "GetFederationToken", "AssumeRole"):
            moto_key = response["Credentials"]["AccessKeyId"]
            # moto hands out one fixed AKIA… id for session tokens; AWS issues a fresh ASIA… id each time.
            logged_key = moto_key if moto_key.startswith("ASIA") else mint_key_id(self.sim.rng, "ASIA")
            response["LoggedAccessKeyId"] = logged_key
        record = build_record(
            rng=self.sim.rng, identity=self.identity, event_time=when, service=service, operation=operation,
            region=region, source_ip=self.sim.rng.choice(self.ips), user_agent=self.user_agent,
            account_id=self.sim.account.account_id,
            request_parameters=_request_parameters(service, operation, params),
            response_elements=None if error or not response else _response_elements(
                service, operation, response, params, when, logged_key),
            error_code=error[0] if error else None, error_message=error[1] if error else None,
            read_only=read_only,
        )
        self.sim.log(record, attacker=self.attacker)
        return response

    # -- credentials the attacker derives ----------------------------------------------------
    def _derived(self, identity: Identity, creds: Credentials, kind: str, event: str, ips: list[str] | None,
                 user_agent: str | None) -> Operator:
        self.sim.attacker_credential(creds.shown, kind, event, self.creds.shown, identity.principal_arn)
        return Operator(self.sim, identity, creds, ips or self.ips, user_agent or self.user_agent)

    def create_access_key_for(self, user_name: str, *, ips: list[str] | None = None,
                              user_agent: str | None = None) -> Operator:
        made = self.call("iam", "CreateAccessKey", UserName=user_name)["AccessKey"]
        self.sim.persisted("CreateAccessKey", user_name)
        self.sim.created("iam:access-key", made["AccessKeyId"], "us-east-1")
        identity = Identity.iam_user(self.sim.account.account_id, user_name, self.sim.user_id(user_name),
                                     made["AccessKeyId"])
        return self._derived(identity, Credentials(made["AccessKeyId"], made["SecretAccessKey"]), "access_key",
                             "CreateAccessKey", ips, user_agent)

    def get_session_token(self, *, ips: list[str] | None = None, user_agent: str | None = None) -> Operator:
        response = self.call("sts", "GetSessionToken", DurationSeconds=129600)
        c = response["Credentials"]
        identity = Identity.iam_user(self.sim.account.account_id, self.identity.user_name or "",
                                     self.identity.principal_id, response["LoggedAccessKeyId"],
                                     session_created=self.sim.clock.tick(0, 1))
        return self._derived(identity, Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"],
                                                   response["LoggedAccessKeyId"]),
                             "session", "GetSessionToken", ips, user_agent)

    def assume_role(self, role_name: str, session_name: str, *, ips: list[str] | None = None,
                    user_agent: str | None = None) -> Operator:
        account = self.sim.account.account_id
        response = self.call("sts", "AssumeRole", RoleArn=f"arn:aws:iam::{account}:role/{role_name}",
                             RoleSessionName=session_name)
        c = response["Credentials"]
        identity = Identity.assumed_role(account, role_name, self.sim.role_id(role_name), session_name,
                                         response["LoggedAccessKeyId"], self.sim.clock.tick(0, 1))
        return self._derived(identity, Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"],
                                                   response["LoggedAccessKeyId"]),
                             "session", "AssumeRole", ips, user_agent)

    def get_federation_token(self, name: str, *, ips: list[str] | None = None,
                             user_agent: str | None = None) -> Operator:
        policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
        response = self.call("sts", "GetFederationToken", Name=name, Policy=policy, DurationSeconds=129600)
        c = response["Credentials"]
        identity = Identity.federated_user(self.sim.account.account_id, name, self.identity.user_name or "",
                                           self.identity.principal_id, response["LoggedAccessKeyId"],
                                           self.sim.clock.tick(0, 1))
        return self._derived(identity, Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"],
                                                   response["LoggedAccessKeyId"]),
                             "session", "GetFederationToken", ips, user_agent)


def _snake(operation: str) -> str:
    from botocore import xform_name

    return str(xform_name(operation))


__all__ = ["Clock", "Credentials", "GroundTruth", "Operator", "Simulation", "event_name", "mint_key_id"]
