"""CloudTrail records as AWS writes them, and the files they are delivered in.

`Identity` renders the `userIdentity` block of each kind of caller (IAM user with a long-term or a
session key, assumed role, federated user, AWS service). `build_record` makes one record with the
full field set. `LogLayout` names files in the real S3 layout:

    AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<16 chars>.json.gz

one file per region per ~5-minute delivery window, each `{"Records": [...]}`, gzip with mtime 0 so
the same input gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
import random
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from isal import igzip
from pydantic import JsonValue

EVENT_VERSION = "1.09"
WINDOW_SECONDS = 300
HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
_TLS = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"}
_FILE_SUFFIX_ALPHABET = string.ascii_letters + string.digits

#: boto3 operation names whose CloudTrail eventName differs.
EVENT_NAMES: dict[tuple[str, str], str] = {
    ("lambda", "CreateFunction"): "CreateFunction20150331",
    ("lambda", "DeleteFunction"): "DeleteFunction20150331",
    ("lambda", "ListFunctions"): "ListFunctions20150331",
    ("lambda", "GetFunction"): "GetFunction20150331v2",
    ("lambda", "AddPermission"): "AddPermission20150331v2",
    ("lambda", "UpdateFunctionCode"): "UpdateFunctionCode20150331v2",
    ("lambda", "UpdateFunctionConfiguration"): "UpdateFunctionConfiguration20150331v2",
    ("s3", "ListObjectsV2"): "ListObjects",
}
#: boto3 service names whose CloudTrail eventSource differs from the endpoint prefix.
EVENT_SOURCES = {"bedrock-runtime": "bedrock.amazonaws.com", "sesv2": "ses.amazonaws.com",
                 "cloudwatch": "monitoring.amazonaws.com"}
#: Data-plane events (CloudTrail data events, category "Data").
DATA_EVENTS = {("s3", "GetObject"), ("s3", "PutObject"), ("s3", "DeleteObject"), ("s3", "HeadObject"),
               ("lambda", "Invoke"), ("dynamodb", "GetItem"), ("dynamodb", "Scan")}
_SECRET_PARAMS = {"password", "newPassword", "oldPassword", "secretString", "secretBinary", "privateKey"}


def iso(moment: datetime) -> str:
    """CloudTrail's eventTime format: second precision, Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uuid_from(rng: random.Random) -> str:
    """A UUID-4-shaped id from a seeded generator (CloudTrail's eventID / requestID)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def lower_first(value: Any) -> Any:
    """boto3 parameters → CloudTrail requestParameters: keys lower-camel-cased, secrets hidden."""
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            name = key[:1].lower() + key[1:]
            out[name] = HIDDEN if name in _SECRET_PARAMS else lower_first(inner)
        return out
    if isinstance(value, list | tuple):
        return [lower_first(v) for v in value]
    if isinstance(value, bytes):
        return HIDDEN
    if isinstance(value, datetime):
        return iso(value)
    return value


@dataclass(frozen=True)
class Identity:
    """Who made a call, as CloudTrail's userIdentity shows it."""

    type: str  # IAMUser | AssumedRole | FederatedUser | AWSService | Root
    account_id: str
    arn: str = ""
    principal_id: str = ""
    access_key_id: str | None = None
    user_name: str | None = None
    invoked_by: str | None = None
    issuer: dict[str, str] | None = None  # sessionIssuer for AssumedRole / FederatedUser
    session_created: str | None = None  # sessionContext.attributes.creationDate
    mfa: bool = False

    def render(self) -> dict[str, JsonValue]:
        if self.type == "AWSService":
            return {"type": "AWSService", "invokedBy": self.invoked_by}
        out: dict[str, JsonValue] = {"type": self.type, "principalId": self.principal_id, "arn": self.arn,
                               "accountId": self.account_id}
        if self.access_key_id:
            out["accessKeyId"] = self.access_key_id
        if self.user_name and self.type in ("IAMUser", "Root"):
            out["userName"] = self.user_name
        if self.session_created is not None:
            ctx: dict[str, JsonValue] = {"attributes": {"creationDate": self.session_created,
                                                  "mfaAuthenticated": "true" if self.mfa else "false"}}
            if self.issuer:
                ctx = {"sessionIssuer": dict(self.issuer), "webIdFederationData": {}, **ctx}
            out["sessionContext"] = ctx
        return out

    @property
    def principal_arn(self) -> str:
        """The principal to contain: the user, or the role behind an assumed-role session."""
        if self.issuer:
            return self.issuer["arn"]
        return self.arn

    @classmethod
    def iam_user(cls, account_id: str, user_name: str, user_id: str, access_key_id: str | None,
                 *, session_created: str | None = None) -> Identity:
        return cls("IAMUser", account_id, f"arn:aws:iam::{account_id}:user/{user_name}", user_id,
                   access_key_id, user_name, session_created=session_created)

    @classmethod
    def assumed_role(cls, account_id: str, role_name: str, role_id: str, session_name: str,
                     access_key_id: str, session_created: str) -> Identity:
        role_arn = f"arn:aws:iam::{account_id}:role/{role_name}"
        return cls("AssumedRole", account_id, f"arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}",
                   f"{role_id}:{session_name}", access_key_id,
                   issuer={"type": "Role", "principalId": role_id, "arn": role_arn, "accountId": account_id,
                           "userName": role_name},
                   session_created=session_created)

    @classmethod
    def federated_user(cls, account_id: str, name: str, parent_user: str, parent_id: str,
                       access_key_id: str, session_created: str) -> Identity:
        return cls("FederatedUser", account_id, f"arn:aws:sts::{account_id}:federated-user/{name}",
                   f"{account_id}:{name}", access_key_id,
                   issuer={"type": "IAMUser", "principalId": parent_id,
                           "arn": f"arn:aws:iam::{account_id}:user/{parent_user}", "accountId": account_id,
                           "userName": parent_user},
                   session_created=session_created)

    @classmethod
    def aws_service(cls, account_id: str, service: str) -> Identity:
        return cls("AWSService", account_id, invoked_by=service)


def event_source(service: str) -> str:
    return EVENT_SOURCES.get(service, f"{service}.amazonaws.com")


def event_name(service: str, operation: str) -> str:
    return EVENT_NAMES.get((service, operation), operation)


def build_record(
    *,
    rng: random.Random,
    identity: Identity,
    event_time: str,
    service: str,
    operation: str,
    region: str,
    source_ip: str,
    user_agent: str,
    account_id: str,
    request_parameters: dict[str, JsonValue] | None,
    response_elements: dict[str, JsonValue] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    read_only: bool | None = None,
    resources: list[dict[str, str]] | None = None,
    additional_event_data: dict[str, JsonValue] | None = None,
) -> dict[str, JsonValue]:
    """One CloudTrail record with the field set AWS writes for an API call."""
    name = event_name(service, operation)
    data_event = (service, operation) in DATA_EVENTS
    if read_only is None:
        read_only = name.startswith(("Get", "List", "Describe", "Head", "Lookup")) or name == "GetCallerIdentity"
    record: dict[str, JsonValue] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": identity.render(),
        "eventTime": event_time,
        "eventSource": event_source(service),
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
    }
    if error_code:
        record["errorCode"] = error_code
        record["errorMessage"] = error_message or ""
    record["requestParameters"] = request_parameters
    record["responseElements"] = None if error_code else response_elements
    if additional_event_data:
        record["additionalEventData"] = additional_event_data
    record["requestID"] = uuid_from(rng)
    record["eventID"] = uuid_from(rng)
    record["readOnly"] = read_only
    if resources:
        record["resources"] = [dict[str, JsonValue](r) for r in resources]
    record["eventType"] = "AwsConsoleSignIn" if name == "ConsoleLogin" else "AwsApiCall"
    record["managementEvent"] = not data_event
    record["recipientAccountId"] = account_id
    record["eventCategory"] = "Data" if data_event else "Management"
    host = f"{service if service != 'bedrock-runtime' else 'bedrock-runtime'}.{region}.amazonaws.com"
    if service in ("iam", "sts") and region == "us-east-1":
        host = f"{service}.amazonaws.com"
    record["tlsDetails"] = {**_TLS, "clientProvidedHostHeader": host}
    return record


def dumps(record: Mapping[str, JsonValue]) -> str:
    """Compact JSON, as CloudTrail writes it."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


@dataclass
class LogLayout:
    """Names and writes delivery files in the real CloudTrail S3 layout."""

    root: Path
    account_id: str
    written: list[Path] = field(default_factory=list)

    def path_for(self, region: str, window_start: datetime, rng: random.Random) -> Path:
        # AWS names and files by delivery time: a file with events of 23:58 may sit in the next day's
        # folder, which is why date-partitioned queries should read one day past the window.
        # (one string, not six pathlib joins: the simulator names tens of thousands of files)
        d = window_start + timedelta(seconds=WINDOW_SECONDS)
        suffix = "".join(rng.choices(_FILE_SUFFIX_ALPHABET, k=16))
        acct = self.account_id
        return Path(f"{self.root}/AWSLogs/{acct}/CloudTrail/{region}/{d.year:04d}/{d.month:02d}/{d.day:02d}/"
                    f"{acct}_CloudTrail_{region}_{d.year:04d}{d.month:02d}{d.day:02d}T{d.hour:02d}{d.minute:02d}Z_"
                    f"{suffix}.json.gz")


def write_records_file(path: Path, records_json: list[str], level: int = 1, *, make_parent: bool = True) -> int:
    """Write `{"Records":[...]}` gzipped (mtime 0: same input, same bytes). Returns bytes written.
    `make_parent=False` when the caller knows the folder exists (the simulator's writer keeps track)."""
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    payload = ('{"Records":[' + ",".join(records_json) + "]}").encode()
    data = igzip.compress(payload, compresslevel=level, mtime=0)
    with open(path, "wb") as handle:
        handle.write(data)
    return len(data)


def iter_records(root: Path) -> Iterator[dict[str, JsonValue]]:
    """Every record under `root`/AWSLogs, file by file in path order (for tests and small tools)."""
    for path in sorted(root.glob("AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz")):
        yield from json.loads(gzip.decompress(path.read_bytes()))["Records"]


def window_start_of(event_time: str) -> datetime:
    """The 5-minute delivery window an eventTime falls in."""
    moment = datetime.strptime(event_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % WINDOW_SECONDS, tz=UTC)
