"""Where the simulated calls come from: the company's networks, the owner's habits, and the intel
files an analysis needs to tell them apart.

Addresses are meant to look like the internet a responder sees. Cloud addresses sit inside real
AWS and Google Cloud published prefixes (a subset of `ip-ranges.json` and `cloud.json`, written in
the providers' formats by `write_intel`); the office, home and hotel addresses sit in ISP blocks
outside them; Tor exits are in the Tor exit list written beside them. The simulator draws every
address from here, so the intel files cover every cloud address and every Tor exit it uses.

An **owner habit** is how the leaked key's owner uses it in the background traffic:

* `office-nat` - one office egress address, shared with the other corporate users (sharing is
  normal, and is what used to pull their keys into an incident);
* `residential` - a new address each day from one home ISP's /16;
* `ci-cloud` - CI runners on addresses that rotate daily inside AWS and Google Cloud published
  ranges, with one CI user agent;
* `traveller` - the office, then the last day of the logs from a foreign ISP (same laptop).

`None` keeps the original simulator's owner (two office addresses and a CI address from the
documentation ranges), which older tests and the demo rely on.
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from pydantic import JsonValue

from keyresponse.errors import InputError

#: Real AWS `ip-ranges.json` entries (prefix, region), all listed for the AMAZON and EC2 services.
AWS_PREFIXES: tuple[tuple[str, str], ...] = (
    ("3.80.0.0/12", "us-east-1"), ("3.208.0.0/12", "us-east-1"), ("3.224.0.0/12", "us-east-1"),
    ("18.204.0.0/14", "us-east-1"), ("44.192.0.0/11", "us-east-1"), ("54.144.0.0/14", "us-east-1"),
    ("18.236.0.0/15", "us-west-2"), ("52.94.0.0/22", "us-east-1"),
)
#: Real Google Cloud `cloud.json` entries (prefix, scope).
GCP_PREFIXES: tuple[tuple[str, str], ...] = (
    ("34.136.0.0/16", "us-central1"), ("35.184.0.0/16", "us-central1"), ("35.192.0.0/15", "us-central1"),
    ("104.197.0.0/16", "us-central1"), ("34.73.0.0/16", "us-east1"), ("35.196.0.0/16", "us-east1"),
)
#: Real Azure `ServiceTags_Public` entries (name, region, prefixes): none of the simulator's addresses is
#: Azure's, and saying so takes the file (without it, "not in a cloud range" is unknown).
AZURE_TAGS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("AzureCloud.eastus", "eastus", ("20.42.0.0/17", "40.71.0.0/16")),
    ("AzureCloud.westeurope", "westeurope", ("13.69.0.0/17", "40.68.0.0/14")),
)
#: Tor exit relays (addresses in long-standing exit families); the list `write_intel` writes.
TOR_EXITS: tuple[str, ...] = (
    "185.220.101.34", "185.220.101.47", "185.220.101.3", "185.220.101.158", "185.220.100.240",
    "185.220.100.253", "199.249.230.87", "199.249.230.163", "109.70.100.23", "109.70.100.66",
    "192.42.116.16", "192.42.116.211",
)
#: Where each habit's non-cloud addresses come from (ISP blocks, none in a cloud range).
OFFICE_NAT = "38.140.54.18"          # the company's office egress (a business ISP)
HOME_ISP_16 = "73.162.0.0/16"        # the owner's home ISP (a cable provider)
FOREIGN_ISP_16 = "79.241.0.0/16"     # a hotel abroad (a European incumbent's block)
#: The prefixes the owner's cloud runners and the "same-cloud" attacker draw from (one cloud, one region).
CI_AWS = ("3.80.0.0/12", "44.192.0.0/11")
CI_GCP = ("35.192.0.0/15", "34.136.0.0/16")
RUNTIME_AWS = ("3.208.0.0/12",)      # the region's Lambda functions, outside a VPC

LAPTOP_UA = ("aws-cli/2.17.12 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9 "
             "md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#s3.ls")
CI_UA = ("aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/linux#6.1.0-18-cloud-amd64 md/arch#x86_64 lang/python#3.11.8 "
         "md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#debian.12 md/prompt#off "
         "md/command#s3.sync")
RUNTIME_UA = ("Boto3/1.34.126 md/Botocore#1.34.126 ua/2.0 os/linux#5.10.223-233.895.amzn2.x86_64 md/arch#x86_64 "
              "lang/python#3.12.4 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy "
              "Botocore/1.34.126")

HABITS: dict[str, str] = {
    "office-nat": "one office egress address, shared with the other corporate users",
    "residential": "a new address each day from one home ISP's /16",
    "ci-cloud": "CI runners on daily-rotating AWS and Google Cloud addresses, one CI user agent",
    "traveller": "the office, then the last day from a foreign ISP with the same laptop",
}
RUNNERS_PER_DAY = (6, 3)  # (AWS, GCP) runner addresses a day
RUNTIME_PER_DAY = 4       # Lambda execution environments (addresses) a day


def host_in(prefix: str, rng: random.Random, avoid: Iterable[str] = ()) -> str:
    """A host address inside `prefix` (not the network's first or last), none of `avoid`."""
    net = ipaddress.ip_network(prefix)
    taken = set(avoid)
    for _ in range(1000):
        candidate = str(net[rng.randrange(1, net.num_addresses - 1)])
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"no free address in {prefix}")  # pragma: no cover - /16s and larger never fill


def days_of(start: datetime, end: datetime) -> list[date]:
    """The UTC days [start, end) touches."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True)
class Plan:
    """Addresses of one actor: a default pool, and per-day pools (by date ordinal) that replace it."""

    default: tuple[str, ...]
    daily: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def all_ips(self) -> list[str]:
        seen = dict.fromkeys(self.default)
        for pool in self.daily.values():
            seen.update(dict.fromkeys(pool))
        return list(seen)

    def pool_on(self, day: date) -> tuple[str, ...]:
        return self.daily.get(day.toordinal(), self.default)


@dataclass(frozen=True)
class Estate:
    """The company's networks for one run, and the owner's (the leaked key's) own habits."""

    habit: str | None
    corp_ips: tuple[str, ...]     # console users' keys and sign-ins
    ci_ips: tuple[str, ...]       # the service users' CI fleet
    lambda_ips: tuple[str, ...]   # the account's Lambda role sessions
    owner: Plan
    owner_ua: str
    runtime: Plan | None = None   # the owner's Lambda runtime, when it uses the key too

    def owner_ips(self) -> list[str]:
        return self.owner.all_ips()

    def known_cloud_ips(self) -> list[str]:
        """Every address of the estate; an attacker's address must be none of these."""
        ips = [*self.corp_ips, *self.ci_ips, *self.lambda_ips, *self.owner.all_ips()]
        return ips + (self.runtime.all_ips() if self.runtime else [])


LEGACY_CORP = ("198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.23", "198.51.100.24")
LEGACY_CI = ("3.236.12.7", "44.203.88.19", "3.236.12.9")
LEGACY_LAMBDA = ("3.218.180.11", "3.218.180.12")
LEGACY_OWNER = ("198.51.100.23", "198.51.100.24", "3.236.12.7")
LEGACY_OWNER_UA = ("Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10.213-201.855.amzn2.x86_64 md/arch#x86_64 "
                   "lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard Botocore/1.34.84")


def check_habit(habit: str | None) -> None:
    if habit is not None and habit not in HABITS:
        raise InputError(f"unknown owner habit {habit!r}; choose one of: {', '.join(HABITS)}")


def estate_for(habit: str | None, *, start: datetime, end: datetime, seed: int, runtime: bool = False) -> Estate:
    """The networks of a run over [start, end): the legacy ones for `habit=None`, else the habit's."""
    check_habit(habit)
    rng = random.Random(f"{seed}:estate:{habit}")
    days = days_of(start, end)
    corp: tuple[str, ...]
    ci: tuple[str, ...]
    lam: tuple[str, ...]
    if habit is None:
        corp, ci, lam = LEGACY_CORP, LEGACY_CI, LEGACY_LAMBDA
        owner, owner_ua = Plan(LEGACY_OWNER), LEGACY_OWNER_UA
    else:
        corp = (OFFICE_NAT,)
        ci = (host_in("44.192.0.0/11", rng), host_in("3.224.0.0/12", rng))  # the CI fleet's NAT gateways
        lam = (host_in("3.208.0.0/12", rng), host_in("3.208.0.0/12", rng))
        owner, owner_ua = _owner_plan(habit, days, rng, avoid={*ci, *lam})
    plan = None
    if runtime:
        taken = {*ci, *lam, *owner.all_ips()}
        daily = {}
        for day in days:
            pool = tuple(host_in(RUNTIME_AWS[0], rng, taken) for _ in range(RUNTIME_PER_DAY))
            taken.update(pool)
            daily[day.toordinal()] = pool
        plan = Plan(daily[days[0].toordinal()], daily)
    return Estate(habit, corp, ci, lam, owner, owner_ua, plan)


def _owner_plan(habit: str, days: Sequence[date], rng: random.Random, avoid: set[str]) -> tuple[Plan, str]:
    if habit == "office-nat":
        return Plan((OFFICE_NAT,)), LAPTOP_UA
    if habit == "traveller":
        return Plan((OFFICE_NAT,), {days[-1].toordinal(): (host_in(FOREIGN_ISP_16, rng),)}), LAPTOP_UA
    taken = set(avoid)
    daily: dict[int, tuple[str, ...]] = {}
    for day in days:
        if habit == "residential":
            pool: tuple[str, ...] = (host_in(HOME_ISP_16, rng, taken),)
        else:  # ci-cloud: each day's runners are new machines
            aws, gcp = RUNNERS_PER_DAY
            pool = (*(host_in(CI_AWS[i % len(CI_AWS)], rng, taken) for i in range(aws)),
                    *(host_in(CI_GCP[i % len(CI_GCP)], rng, taken) for i in range(gcp)))
        taken.update(pool)
        daily[day.toordinal()] = pool
    return Plan(daily[days[0].toordinal()], daily), (LAPTOP_UA if habit == "residential" else CI_UA)


# -- the intel files --------------------------------------------------------------------------------
INTEL_FILES = {"aws_ranges": "intel/ip-ranges.json", "gcp_ranges": "intel/cloud.json",
               "azure_ranges": "intel/ServiceTags_Public.json", "tor_exits": "intel/tor-exit-addresses.txt"}


def write_intel(out: Path, *, created: datetime) -> dict[str, str]:
    """Write the published ranges (AWS, Google Cloud, Azure) and the Tor exit list (the bulk exit
    list: one address a line), in the providers' formats, under `out/intel/`.

    Returns the files relative to `out` (the keys of `IntelConfig`). They are subsets of the real
    files: the prefixes the simulator draws from, plus the Tor exits it uses."""
    folder = out / "intel"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = created.strftime("%Y-%m-%d-%H-%M-%S")
    aws = {"syncToken": str(int(created.timestamp())), "createDate": stamp,
           "prefixes": [{"ip_prefix": prefix, "region": region, "service": service, "network_border_group": region}
                        for prefix, region in AWS_PREFIXES for service in ("AMAZON", "EC2")
                        if not (prefix.startswith("52.94.") and service == "EC2")],
           "ipv6_prefixes": [{"ipv6_prefix": "2600:1f18::/33", "region": "us-east-1", "service": "EC2",
                              "network_border_group": "us-east-1"}]}
    gcp = {"syncToken": str(int(created.timestamp() * 1000)), "creationTime": created.strftime("%Y-%m-%dT%H:%M:%S.%f"),
           "prefixes": [{"ipv4Prefix": prefix, "service": "Google Cloud", "scope": scope}
                        for prefix, scope in GCP_PREFIXES]}
    azure = {"changeNumber": 1, "cloud": "Public",
             "values": [{"name": name, "id": name,
                         "properties": {"changeNumber": 1, "region": region, "regionId": i + 1, "platform": "Azure",
                                        "systemService": "", "addressPrefixes": list(prefixes),
                                        "networkFeatures": None}}
                        for i, (name, region, prefixes) in enumerate(AZURE_TAGS)]}
    exits = sorted(TOR_EXITS, key=ipaddress.ip_address)
    (out / INTEL_FILES["aws_ranges"]).write_text(json.dumps(aws, indent=2) + "\n")
    (out / INTEL_FILES["gcp_ranges"]).write_text(json.dumps(gcp, indent=2) + "\n")
    (out / INTEL_FILES["azure_ranges"]).write_text(json.dumps(azure, indent=2) + "\n")
    (out / INTEL_FILES["tor_exits"]).write_text("".join(f"{ip}\n" for ip in exits))  # the bulk exit list's format
    return dict(INTEL_FILES)


def intel_config(out: Path, truth: Mapping[str, JsonValue]) -> dict[str, str]:
    """The run's intel files as an `IntelConfig` mapping of absolute paths (from its ground truth)."""
    files = truth.get("intel") or {}
    return {name: str(out / str(rel)) for name, rel in files.items()} if isinstance(files, dict) else {}
