"""Who is behind each source IP, as far as published ranges and the responder's lists can tell.

    intel = IntelConfig(aws_ranges=Path("ip-ranges.json"), tor_exits=Path("tor-exits.txt"))
    attribute_ips(events, intel)   # → {"ips": [...], "external_accounts": [...], "summary": ...}

Sources, all read from local files (a URL is fetched only through an injected `fetch` and cached
to disk; tests never fetch):

* cloud ranges in each provider's published format — AWS `ip-ranges.json`
  (`prefixes[].ip_prefix` / `ipv6_prefixes[].ipv6_prefix`, `region`, `service`), Google Cloud
  `cloud.json` (`prefixes[].ipv4Prefix` / `ipv6Prefix`, `scope`, `service`) and Azure
  `ServiceTags_Public.json` (`values[].properties.addressPrefixes`, `region`, `systemService`);
* Tor exit lists and threat-intelligence lists: plain text, one IP or CIDR per line, `#` comments;
  a comment after an entry is that entry's label.

Private, shared (CGNAT), loopback, link-local, reserved, multicast and documentation (TEST-NET)
addresses, AWS service names such as `lambda.amazonaws.com` or `AWS Internal`, and text that is not
an address get an honest classification and a note, never an exception. A range file that is
missing or unreadable is reported in `notes` and the answer says "unknown" rather than "not cloud".

Size: the sources (ranges, lists, caches) and the per-IP verdict that reads them are one answer; they are kept together.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from pydantic import JsonValue

from keyresponse.intel.events import Event, refs, sorted_events

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Fetch = Callable[[str], bytes]

DOCUMENTATION = tuple(ipaddress.ip_network(n) for n in (
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"))
SHARED = ipaddress.ip_network("100.64.0.0/10")
FETCH_TIMEOUT_S = 20
_ACCOUNT_IN_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:([0-9]{12}):", re.ASCII)
_ACCOUNT_FIELDS = re.compile(r'"(?:userId|accountId|AccountId|principal|Principal|AWS)"\s*:\s*"([0-9]{12})"', re.ASCII)


def default_fetch(url: str) -> bytes:  # pragma: no cover - network; never used by tests
    """Plain HTTPS GET (only called when a range URL is configured and not yet cached)."""
    if not url.startswith("https://"):
        raise ValueError(f"refusing to fetch a non-HTTPS range URL: {url}")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
        data: bytes = response.read()
        return data


@dataclass(frozen=True)
class Source:
    """A local file, or a URL cached to `cache_dir` (fetched once through `fetch`)."""

    path: Path | None = None
    url: str | None = None


@dataclass(frozen=True)
class IntelConfig:
    """Where attribution reads its ranges and lists. Every field is optional."""

    aws_ranges: Source | Path | None = None
    gcp_ranges: Source | Path | None = None
    azure_ranges: Source | Path | None = None
    tor_exits: Source | Path | None = None
    #: list name → file of IPs/CIDRs (for example {"abuse-feed": Path("feed.txt")})
    threat_lists: Mapping[str, Source | Path] = field(default_factory=dict)
    cache_dir: Path | None = None
    fetch: Fetch | None = None
    #: The owner's usual user agents and calls (for intent), passed through answer_five_questions.
    baseline: Mapping[str, Any] | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, object] | IntelConfig | None) -> IntelConfig:
        """From a plain dict (paths or URLs as strings); unknown keys are ignored."""
        if isinstance(data, IntelConfig):
            return data
        data = data or {}

        def src(value: object) -> Source | None:
            if value is None or isinstance(value, Source):
                return value
            text = str(value)
            return Source(url=text) if text.startswith(("https://", "http://")) else Source(path=Path(text))

        given = data.get("threat_lists") or {}
        if not isinstance(given, Mapping):
            raise TypeError(f"threat_lists must map list names to files or URLs, not {type(given).__name__}")
        lists = {str(k): s for k, v in given.items() if (s := src(v))}
        cache_dir = data.get("cache_dir") or None
        if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
            raise TypeError(f"cache_dir must be a path, not {type(cache_dir).__name__}")
        baseline = data.get("baseline") or None
        if baseline is not None and not isinstance(baseline, Mapping):
            raise TypeError(f"baseline must be a mapping, not {type(baseline).__name__}")
        # A fetch is documented as (url) -> bytes; callable() could not check that, and `_read` turns
        # any failure of a fetch into a note, so it is passed on as given.
        fetch = cast("Fetch | None", data.get("fetch"))
        return cls(aws_ranges=src(data.get("aws_ranges")), gcp_ranges=src(data.get("gcp_ranges")),
                   azure_ranges=src(data.get("azure_ranges")), tor_exits=src(data.get("tor_exits")),
                   threat_lists=lists, cache_dir=Path(cache_dir) if cache_dir else None,
                   fetch=fetch, baseline=baseline)


@dataclass(frozen=True)
class Range:
    network: Network
    source: str  # aws | gcp | azure | tor | list:<name>
    service: str | None = None
    region: str | None = None
    label: str | None = None


@dataclass
class Ranges:
    """Every loaded range, and what could not be loaded."""

    ranges: list[Range] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    #: address → its ranges: a scan of every prefix (AWS alone publishes thousands) is done once per
    #: address, though an investigation judges its addresses again each scoping round
    _hits: dict[Address, list[Range]] = field(default_factory=dict, repr=False, compare=False)

    def lookup(self, address: Address) -> list[Range]:
        if address not in self._hits:
            self._hits[address] = [r for r in self.ranges
                                   if r.network.version == address.version and address in r.network]
        return self._hits[address]


def _read(source: Source | Path | None, what: str, cache_dir: Path | None, fetch: Fetch | None,
          notes: list[str]) -> bytes | None:
    if source is None:
        return None
    src = source if isinstance(source, Source) else Source(path=source)
    if src.path is not None:
        try:
            return src.path.read_bytes()
        except OSError as exc:
            notes.append(f"{what}: cannot read {src.path} ({exc.strerror or exc}); treated as unknown")
            return None
    if src.url:
        if cache_dir is None:
            notes.append(f"{what}: a URL is configured but no cache_dir; not fetched")
            return None
        cached = cache_dir / f"{what}-{hashlib.sha256(src.url.encode()).hexdigest()[:16]}.cache"
        if cached.is_file():
            return cached.read_bytes()
        if fetch is None:
            notes.append(f"{what}: {src.url} not cached and no fetch configured; treated as unknown")
            return None
        try:
            data = fetch(src.url)
        except Exception as exc:  # any transport failure is a gap, reported, not a crash
            notes.append(f"{what}: fetching {src.url} failed ({exc}); treated as unknown")
            return None
        cache_dir.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
        return data
    return None


def _net(text: Any) -> Network | None:
    try:
        return ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        return None


def _rows(value: JsonValue, what: str) -> list[dict[str, JsonValue]]:
    """The objects of a ranges file's list; ValueError (the file is then noted unreadable) when it is not one."""
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise ValueError(f"{what} is not a list of objects")
    return [row for row in value if isinstance(row, dict)]


def _text(value: JsonValue) -> str | None:
    return None if value is None else str(value)


def parse_aws(data: Mapping[str, JsonValue]) -> list[Range]:
    out = []
    for row in [*_rows(data.get("prefixes"), "prefixes"), *_rows(data.get("ipv6_prefixes"), "ipv6_prefixes")]:
        net = _net(row.get("ip_prefix") or row.get("ipv6_prefix"))
        if net:
            out.append(Range(net, "aws", _text(row.get("service")), _text(row.get("region"))))
    return out


def parse_gcp(data: Mapping[str, JsonValue]) -> list[Range]:
    out = []
    for row in _rows(data.get("prefixes"), "prefixes"):
        net = _net(row.get("ipv4Prefix") or row.get("ipv6Prefix"))
        if net:
            out.append(Range(net, "gcp", _text(row.get("service")), _text(row.get("scope"))))
    return out


def parse_azure(data: Mapping[str, JsonValue]) -> list[Range]:
    out = []
    for value in _rows(data.get("values"), "values"):
        props = value.get("properties") or {}
        if not isinstance(props, dict):
            raise ValueError("values[].properties is not an object")
        prefixes = props.get("addressPrefixes") or []
        if not isinstance(prefixes, list):
            raise ValueError("values[].properties.addressPrefixes is not a list")
        for prefix in prefixes:
            net = _net(prefix)
            if net:
                out.append(Range(net, "azure", _text(props.get("systemService") or value.get("name")),
                                 _text(props.get("region") or None), _text(value.get("name"))))
    return out


def parse_ip_list(text: str, source: str) -> list[Range]:
    """One IP or CIDR per line; `#` starts a comment, and a comment after an entry labels it."""
    out = []
    for line in text.splitlines():
        entry, _, comment = line.partition("#")
        entry = entry.strip()
        if not entry:
            continue
        net = _net(entry.split()[0])
        if net:
            out.append(Range(net, source, label=comment.strip() or None))
    return out


def load_ranges(config: IntelConfig) -> Ranges:
    """Read every configured source; what is missing or malformed goes to `notes`."""
    result = Ranges()
    parsers: dict[str, Callable[[Mapping[str, JsonValue]], list[Range]]] = {
        "aws": parse_aws, "gcp": parse_gcp, "azure": parse_azure}
    for name, source in (("aws", config.aws_ranges), ("gcp", config.gcp_ranges), ("azure", config.azure_ranges)):
        if source is None:
            result.notes.append(f"{name} ranges not configured: cannot tell whether an address belongs to {name}")
            continue
        raw = _read(source, name, config.cache_dir, config.fetch, result.notes)
        if raw is None:
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, Mapping):
                raise ValueError("not a JSON object")
            result.ranges.extend(parsers[name](data))
            result.loaded.add(name)
        except ValueError as exc:
            result.notes.append(f"{name} ranges unreadable ({exc}); treated as unknown")
    lists: list[tuple[str, Source | Path | None]] = [("tor", config.tor_exits),
                                                     *((f"list:{k}", v) for k, v in config.threat_lists.items())]
    for name, source in lists:
        if source is None:
            if name == "tor":
                result.notes.append("Tor exit list not configured: cannot tell whether an address is a Tor exit")
            continue
        raw = _read(source, name.replace(":", "-"), config.cache_dir, config.fetch, result.notes)
        if raw is None:
            continue
        result.ranges.extend(parse_ip_list(raw.decode("utf-8", "replace"), name))
        result.loaded.add(name)
    return result


def _special(address: Address) -> tuple[str, str] | None:
    """(kind, note) for addresses that are not a public internet host."""
    if any(address in net for net in DOCUMENTATION if net.version == address.version):
        return "documentation", ("documentation range (TEST-NET / RFC 5737 / RFC 3849): not routable on the "
                                 "internet - sample or synthetic data, nobody to attribute")
    if address.version == 4 and address in SHARED:
        return "private", "carrier-grade NAT space (RFC 6598): not attributable from outside the carrier"
    if address.is_loopback:
        return "private", "loopback address: the call came from the same host - check for log tampering"
    if address.is_link_local:
        return "private", "link-local address: not attributable"
    if address.is_multicast:
        return "reserved", "multicast address: cannot be a caller; the record is suspect"
    if address.is_reserved or address.is_unspecified:
        return "reserved", "reserved address: not routable; likely anonymised or malformed data"
    if address.is_private:
        return "private", ("private address (RFC 1918 / ULA): the call came through a VPC endpoint or private "
                           "network; look at vpcEndpointId and VPC flow logs")
    return None


def attribute_ip(ip: object, ranges: Ranges) -> dict[str, Any]:
    """One source address, classified. Never raises."""
    text = "" if ip is None else str(ip).strip()
    base: dict[str, Any] = {"ip": text, "kind": "unknown", "provider": None, "service": None, "region": None,
                            "tor_exit": None, "lists": [], "confidence": "low", "notes": []}
    if not text:
        return base | {"notes": ["no source address recorded"]}
    if text.lower() == "aws internal" or text.lower().endswith(".amazonaws.com"):
        return base | {"kind": "aws_service", "provider": "aws", "service": text, "confidence": "high",
                       "tor_exit": False,
                       "notes": [f"{text!r} is an AWS service acting on the account's behalf, not an internet address"]}
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return base | {"kind": "malformed",
                       "notes": [f"{text!r} is not a valid IP address (anonymised or corrupt log); unknown"]}
    special = _special(address)
    if special:
        kind, note = special
        return base | {"kind": kind, "confidence": "high", "notes": [note]}
    hits = ranges.lookup(address)
    clouds = sorted((r for r in hits if r.source in ("aws", "gcp", "azure")),
                    key=lambda r: (-r.network.prefixlen, r.service == "AMAZON"))
    listed = [r for r in hits if r.source == "tor" or r.source.startswith("list:")]
    out = base | {"kind": "public"}
    notes: list[str] = []
    if clouds:
        best = clouds[0]
        services = sorted({r.service for r in clouds if r.source == best.source and r.service})
        out |= {"kind": "cloud", "provider": best.source, "service": best.service, "region": best.region,
                "services": services, "prefix": str(best.network), "confidence": "high"}
        notes.append(f"in {best.source.upper()} published range {best.network}"
                     f"{' (' + best.region + ')' if best.region else ''}: a cloud host - anyone can rent one; "
                     "it may also be your own workload")
    else:
        missing = [p for p in ("aws", "gcp", "azure") if p not in ranges.loaded]
        if missing:
            notes.append(f"not in the loaded cloud ranges; {', '.join(missing)} ranges not loaded, so cloud "
                         "ownership is unknown")
        else:
            notes.append("not in AWS, Google Cloud or Azure published ranges")
            out["confidence"] = "medium"
    if "tor" in ranges.loaded:
        out["tor_exit"] = any(r.source == "tor" for r in listed)
    if out["tor_exit"]:
        notes.append("Tor exit relay: the actor hid behind Tor - the address says nothing about who they are")
        out["confidence"] = "high"
    for r in listed:
        if r.source.startswith("list:"):
            out["lists"].append({"list": r.source[5:], "match": str(r.network), "label": r.label})
    if out["lists"]:
        notes.append("on threat list(s): " + ", ".join(f"{x['list']}{' (' + x['label'] + ')' if x['label'] else ''}"
                                                       for x in out["lists"]))
    out["notes"] = notes
    return out


class ExternalAccount(TypedDict):
    """An AWS account outside the victim's that the actor's requests name, or where the attacker holds a principal."""

    account_id: str
    evidence: list[dict[str, JsonValue]]
    count: int
    note: str
    principals: NotRequired[list[str]]


def external_accounts(events: Iterable[Event], own_accounts: Sequence[str] = ()) -> list[ExternalAccount]:
    """AWS account ids named in the actor's requests that are not the victim's (trust policies, shares)."""
    own = set(own_accounts)
    for event in events:
        arn = str(event.get("principal_arn") or "")
        if m := _ACCOUNT_IN_ARN.match(arn):
            own.add(m.group(1))
    found: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        text = str(event.get("request_parameters") or "")
        for account in {*_ACCOUNT_IN_ARN.findall(text), *_ACCOUNT_FIELDS.findall(text)}:
            if account not in own:
                found[account].append(event)
    return [{"account_id": account, "evidence": refs(sorted_events(hits)), "count": len(hits),
             "note": "an AWS account outside yours named in the actor's requests (trust policy, share, grant): "
                     "the strongest attribution lead - report it to AWS"}
            for account, hits in sorted(found.items())]


class AttributionAnswer(TypedDict):
    """Who is behind each source address (`attribute_ips`); each of `ips` is an `attribute_ip` row with
    its events' count, times, evidence and user agents."""

    ips: list[dict[str, Any]]
    external_accounts: list[ExternalAccount]
    sources_loaded: list[str]
    notes: list[str]
    summary: str


def attribute_ips(events: Iterable[Event], config: IntelConfig | Mapping[str, object] | None = None,
                  ranges: Ranges | None = None, *,
                  attacker_infrastructure: Sequence[Mapping[str, object]] = ()) -> AttributionAnswer:
    """Per source IP: classification, the events from it, first/last seen; plus a summary.

    `attacker_infrastructure`: the investigation's principals in accounts outside ours
    (keyresponse.guardrails.ForeignPrincipal as data): each account joins `external_accounts` (or its
    entry there says so), with the principal and the credentials the attacker holds in it."""
    config = IntelConfig.from_mapping(config)
    ranges = ranges or load_ranges(config)
    ordered = sorted_events(events)
    by_ip: dict[str, list[Event]] = defaultdict(list)
    for event in ordered:
        by_ip[str(event.get("source_ip") or "")].append(event)
    ips = []
    for ip, hits in by_ip.items():
        row = attribute_ip(ip, ranges)
        row |= {"event_count": len(hits), "first_seen": hits[0].get("event_time"),
                "last_seen": hits[-1].get("event_time"), "evidence": refs(hits, 5),
                "user_agents": sorted({str(e.get("user_agent")) for e in hits if e.get("user_agent")})}
        ips.append(row)
    accounts = _with_infrastructure(external_accounts(ordered), attacker_infrastructure)
    return {"ips": ips, "external_accounts": accounts, "sources_loaded": sorted(ranges.loaded),
            "notes": list(ranges.notes), "summary": _summary(ips, accounts)}


def _with_infrastructure(accounts: list[ExternalAccount],
                         infrastructure: Sequence[Mapping[str, object]]) -> list[ExternalAccount]:
    """`external_accounts` with the accounts of the attacker's own principals: the account a leaked key
    assumed a role in is the attacker's, whatever the requests named."""
    by_id = {a["account_id"]: a for a in accounts}
    for item in infrastructure:
        account = str(item.get("account_id") or "")
        if not account:
            continue
        keys = item.get("access_key_ids") or []
        held = (f"the attacker holds {item.get('kind')} {item.get('name')} there "
                f"(credentials {', '.join(str(k) for k in keys) if isinstance(keys, list) else keys}): "
                "attacker infrastructure")
        entry = by_id.get(account)
        if entry is None:
            entry = by_id[account] = {"account_id": account, "evidence": [], "count": 0,
                                      "note": "an AWS account outside yours: report it to AWS"}
        entry["principals"] = sorted({*entry.get("principals", []), str(item.get("principal_arn") or "")} - {""})
        entry["note"] = f"{entry['note']}; {held}" if held not in entry["note"] else entry["note"]
    return [by_id[key] for key in sorted(by_id)]


def _summary(ips: Sequence[Mapping[str, Any]], accounts: Sequence[Mapping[str, Any]]) -> str:
    if not ips:
        return "No source addresses to attribute."
    parts = []
    tor = [r["ip"] for r in ips if r.get("tor_exit")]
    cloud = [f"{r['ip']} ({str(r['provider']).upper()}{' ' + r['region'] if r.get('region') else ''})"
             for r in ips if r["kind"] == "cloud"]
    listed = [r["ip"] for r in ips if r.get("lists")]
    odd = [r["ip"] for r in ips if r["kind"] in ("private", "reserved", "documentation", "malformed", "unknown")]
    other = [r["ip"] for r in ips if r["kind"] == "public" and not r.get("tor_exit") and not r.get("lists")]
    if tor:
        parts.append(f"Tor exit relays {', '.join(tor)}")
    if cloud:
        parts.append(f"cloud hosts {', '.join(cloud)}")
    if listed:
        parts.append(f"addresses on threat lists {', '.join(listed)}")
    if other:
        parts.append(f"other public addresses {', '.join(other)} (hosting or ISP; owner unknown without WHOIS/ASN data)")
    if odd:
        parts.append(f"non-attributable addresses {', '.join(odd)}")
    text = "Calls came from " + "; ".join(parts) + "."
    if accounts:
        text += " Requests name outside AWS account(s) " + ", ".join(a["account_id"] for a in accounts) + "."
    text += " No attribution to a named actor: infrastructure only."
    return text
