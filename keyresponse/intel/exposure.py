"""How the key leaked: where it was published, when, the first use, and the likely cause.

    assess_exposure("health", payload, key_facts, first_attacker_event)

Reads what the alert says in its structured fields (an AWS Health `AWS_RISK_CREDENTIALS_EXPOSED`
event's `eventMetadata` names the public URL; a GitHub secret-scanning alert names the repository,
and its locations — from the alert API — the file and commit; a GuardDuty
`InstanceCredentialExfiltration` finding says instance credentials were used elsewhere), the key's
facts (age, owner, last use), and the actor's first call. Causes are ranked with their reasoning;
where the facts cannot decide, the answer says so.

The location is never scraped from free text: a Health event's description is prose for people
and carries AWS's own support links, which once stood in as "where the key leaked". A metadata
value counts as the location when it is a whole http(s) URL on a host that is not AWS's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from pydantic import JsonValue

from keyresponse.intel.events import Event, parse_time, ref
from keyresponse.intel.taxonomy import instance_credential

#: Hosts of AWS's own pages (support articles, documentation, the console): never a leak location.
AWS_HOSTS = ("amazon.com", "amazonaws.com", "aws.dev", "awsstatic.com", "amazon.dev")
#: Metadata keys that name a location, tried first (any other URL-valued key is taken after them).
LOCATION_KEYS = ("url", "location", "link", "exposure", "exposed", "public", "leak", "source")
_GITHUB_BLOB = re.compile(r"^https?://github\.com/([^/]+/[^/]+)/(?:blob|tree|raw)/([^/]+)/(.+)$")
ENV_FILES = re.compile(r"(^|/)(\.env(\.[\w-]+)?|\.envrc|[\w.-]*\.env|docker-compose[\w.-]*\.ya?ml|\.github/workflows/"
                       r"[^/]+|\.gitlab-ci\.yml|Jenkinsfile|[\w-]+\.tfvars|\.travis\.yml|buildspec\.ya?ml)$",
                       re.IGNORECASE)
CONFIG_FILES = re.compile(r"(^|/)(\.aws/credentials|credentials(\.\w+)?|\.s3cfg|\.boto|boto\.cfg)$", re.IGNORECASE)
PASTE_HOSTS = ("pastebin.com", "gist.github.com", "paste.ee", "hastebin.com", "ghostbin", "justpaste.it")
CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "sourceforge.net", "dev.azure.com")
LONG_LIVED_DAYS = 90


def _description(detail: Mapping[str, Any]) -> str:
    parts = []
    for item in detail.get("eventDescription") or []:
        if isinstance(item, Mapping):
            parts.append(str(item.get("latestDescription") or ""))
    return " ".join(parts)


def _parse_url(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {"url": url}
    if m := _GITHUB_BLOB.match(url):
        out |= {"repository": m.group(1), "commit": m.group(2), "file": m.group(3)}
    return out


def _public_url(value: Any) -> str | None:
    """`value` when it is one whole http(s) URL on a host that is not AWS's own, else None."""
    if not isinstance(value, str) or any(ch.isspace() for ch in value.strip()):
        return None
    parsed = urlparse(value.strip())
    host = (parsed.hostname or "").lower()
    if parsed.scheme not in ("http", "https") or not host:
        return None
    if any(host == h or host.endswith("." + h) for h in AWS_HOSTS):
        return None
    return value.strip()


def _metadata_url(metadata: Any) -> str | None:
    """The leak location among a Health event's `eventMetadata` values (a flat string map)."""
    if not isinstance(metadata, Mapping):
        return None
    ranked = sorted(metadata.items(), key=lambda kv: not any(k in str(kv[0]).lower() for k in LOCATION_KEYS))
    return next((url for _, value in ranked if (url := _public_url(value))), None)


def _health(payload: Mapping[str, Any]) -> dict[str, Any]:
    detail = payload.get("detail") if isinstance(payload.get("detail"), Mapping) else payload
    assert isinstance(detail, Mapping)
    text = _description(detail)
    facts: dict[str, Any] = {"detected_by": "aws_health", "event_type": detail.get("eventTypeCode"),
                             "exposed_at": detail.get("startTime") or payload.get("time"),
                             "detection_text": text or None}
    if url := _metadata_url(detail.get("eventMetadata")):
        facts |= _parse_url(url)
    return facts


def _location_page(repo: Mapping[str, Any], details: Mapping[str, Any]) -> str | None:
    """The page a person opens for a commit location: `<repository html_url>/blob/<commit>/<path>`,
    built from GitHub's structured fields (the location's own URLs point at the REST API)."""
    base, commit, path = repo.get("html_url"), details.get("commit_sha"), details.get("path")
    if not (isinstance(base, str) and base.startswith("https://") and commit and path):
        return None
    return f"{base.rstrip('/')}/blob/{commit}/{str(path).lstrip('/')}"


def _github(payload: Mapping[str, Any], locations: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    alert = payload.get("alert") if isinstance(payload.get("alert"), Mapping) else {}
    repo = payload.get("repository") if isinstance(payload.get("repository"), Mapping) else {}
    assert isinstance(alert, Mapping) and isinstance(repo, Mapping)
    facts: dict[str, Any] = {
        "detected_by": "github_secret_scanning", "repository": repo.get("full_name"),
        "repository_private": repo.get("private"), "alert_url": alert.get("html_url"),
        "exposed_at": alert.get("created_at"), "publicly_leaked": alert.get("publicly_leaked"),
        "validity": alert.get("validity"), "push_protection_bypassed": alert.get("push_protection_bypassed")}
    found = list(locations or payload.get("locations") or alert.get("locations") or [])
    places = []
    for loc in found:
        if not isinstance(loc, Mapping):
            continue
        details = loc.get("details") if isinstance(loc.get("details"), Mapping) else {}
        assert isinstance(details, Mapping)
        place = {"type": loc.get("type"), "file": details.get("path"), "commit": details.get("commit_sha"),
                 "start_line": details.get("start_line"),
                 "url": _location_page(repo, details) or details.get("html_url") or details.get("blob_url")
                 or details.get("commit_url") or next(
                     (v for k, v in details.items() if str(k).endswith("_url") and v), None)}
        places.append({k: v for k, v in place.items() if v is not None})
    if places:
        facts["locations"] = places
        first = places[0]
        facts |= {k: first[k] for k in ("file", "commit") if k in first}
        if first.get("url"):
            facts["url"] = first["url"]
        if first.get("type") and first["type"] != "commit":
            facts["location_type"] = first["type"]
    if not facts.get("url") and repo.get("html_url"):
        facts["url"] = repo.get("html_url")
        facts["url_is_repository_only"] = True
    return facts


def _guardduty(payload: Mapping[str, Any]) -> dict[str, Any]:
    detail = payload.get("detail") if isinstance(payload.get("detail"), Mapping) else payload
    assert isinstance(detail, Mapping)
    service = detail.get("service") if isinstance(detail.get("service"), Mapping) else {}
    assert isinstance(service, Mapping)
    return {"detected_by": "guardduty", "finding_type": detail.get("type"),
            "exposed_at": service.get("eventFirstSeen") or detail.get("createdAt")}


def _alert_facts(source: str | None, payload: Mapping[str, Any] | None,
                 locations: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    if not payload:
        return {"detected_by": source or None}
    src = (source or "").lower()
    if src == "health" or payload.get("source") == "aws.health":
        return _health(payload)
    if src == "github" or ("alert" in payload and "repository" in payload):
        return _github(payload, locations)
    if src == "guardduty" or payload.get("source") == "aws.guardduty":
        return _guardduty(payload)
    if src == "securityhub":
        text = json.dumps(payload)
        finding = re.search(r"[A-Za-z]+:IAMUser/[A-Za-z.]+", text)
        return {"detected_by": "securityhub", "finding_type": finding.group(0) if finding else None}
    return {"detected_by": src or None}


def _where(ip: str | None, attribution: Mapping[str, object] | None) -> str | None:
    """"aws" when the caller is in AWS's ranges, "outside" when AWS ranges are loaded and it is not."""
    if not attribution or not ip:
        return None
    rows = attribution.get("ips") or []
    row = next((r for r in (rows if isinstance(rows, list) else []) if isinstance(r, dict) and r.get("ip") == ip),
               None)
    if not row:
        return None
    if row.get("provider") == "aws" or row.get("kind") == "aws_service":
        return "aws"
    loaded = attribution.get("sources_loaded") or []
    if isinstance(loaded, list) and "aws" in loaded and row.get("kind") in ("cloud", "public"):
        return "outside"
    return None


def _minutes(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds() / 60, 1)


def assess_exposure(alert_source: str | None, alert_payload: Mapping[str, JsonValue] | None,
                    key_facts: Mapping[str, JsonValue] | None, first_attacker_event: Event | None, *,
                    github_locations: Sequence[Mapping[str, JsonValue]] | None = None,
                    ip_attribution: Mapping[str, object] | None = None,
                    now: datetime | None = None) -> dict[str, JsonValue]:
    """The exposure answer (see the package docstring for its fields). Never raises on odd input."""
    facts = _alert_facts(alert_source, alert_payload if isinstance(alert_payload, Mapping) else None,
                         github_locations)
    key = dict(key_facts or {})
    first = first_attacker_event
    exposed_at = parse_time(facts.get("exposed_at"))
    created = parse_time(key.get("created_at"))
    first_time = parse_time(first.get("event_time")) if first else None
    reference = now or first_time or exposed_at
    age_days = key.get("age_days")
    if age_days is None and created and reference:
        age_days = max(0, (reference - created).days)
    url = str(facts.get("url") or "")
    host = (urlparse(url).hostname or "") if url else ""
    file = str(facts.get("file") or "")
    causes: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []

    def cause(name: str, confidence: str, reasoning: str) -> None:
        causes.append({"cause": name, "confidence": confidence, "reasoning": reasoning})

    if url and any(h in host for h in PASTE_HOSTS):
        cause("pasted_publicly", "high", f"the key is published in a paste at {url}")
    elif facts.get("location_type") and facts["location_type"] != "commit":
        cause("pasted_publicly", "high", f"GitHub found the key in a {facts['location_type']} (not code): "
              "someone pasted it into a discussion, issue or pull request")
    elif file and ENV_FILES.search(file):
        cause("leaked_environment_variable", "high",
              f"the key sits in {file}, an environment/CI file committed to {facts.get('repository') or host}: "
              "a leaked environment variable")
    elif file and CONFIG_FILES.search(file):
        cause("committed_credentials_file", "high", f"an AWS credentials file ({file}) was committed")
    elif (url and any(h in host for h in CODE_HOSTS)) or facts.get("repository"):
        where = file or "the repository"
        cause("hard_coded_in_code", "high" if file else "medium",
              f"the key is in {where} of {facts.get('repository') or host}"
              f"{' at commit ' + str(facts['commit']) if facts.get('commit') else ''}: hard-coded in source")
    elif url:
        cause("published_online", "high", f"AWS found the key publicly available at {url}")
    instance = instance_credential(first)
    if instance or "InstanceCredentialExfiltration" in str(facts.get("finding_type") or ""):
        ip = str(first.get("source_ip")) if first else None
        kind = _where(ip, ip_attribution)
        if "OutsideAWS" in str(facts.get("finding_type") or "") or kind == "outside":
            cause("ssrf_instance_metadata", "high",
                  f"instance-role credentials ({instance or 'per GuardDuty'}) were used from {ip or 'outside AWS'}, "
                  "which is not AWS: typically stolen through SSRF to the instance metadata service (IMDSv1) "
                  "or from a compromised instance")
        elif kind == "aws":
            cause("ssrf_instance_metadata", "low",
                  f"instance-role credentials ({instance}) were used from {ip}, an AWS address: could be the instance "
                  "itself or another EC2 host (GuardDuty's InsideAWS case); check that the IP is not the instance's")
        else:
            cause("ssrf_instance_metadata", "medium",
                  f"instance-role credentials ({instance or 'per GuardDuty'}) in the actor's hands; whether the "
                  f"caller {ip or ''} is outside AWS is unknown (no AWS ranges loaded) - SSRF to the metadata "
                  "service is the usual path")
    if first and str(first.get("event_name")) == "ConsoleLogin":
        cause("phishing", "medium", "the actor's first action was a console sign-in: a password (and perhaps "
              "MFA) was phished or reused, which a leaked access key alone cannot give")
    if not causes:
        reason = ("no public exposure is known for this key" if not url else "")
        cause("malware_or_local_theft", "low", f"{reason}; infostealer malware on a machine holding "
              "~/.aws/credentials or environment variables is a common cause - check the owner's devices")
        cause("leaked_environment_variable", "low", "keys in CI variables, build logs or container images "
              "leak without a public commit - check CI logs and images that held the key")
        cause("phishing", "low", "cannot be ruled out without the owner's account of events")
    if facts.get("detected_by") in ("aws_health", "github_secret_scanning") and not first:
        cause("not_yet_abused", "medium", "the key was found public, but no call by another party was seen")
    first_use = None
    if first:
        first_use = ref(first) | {"source_ip": first.get("source_ip"), "user_agent": first.get("user_agent"),
                                  "minutes_after_exposure": _minutes(first_time, exposed_at)}
        evidence.append(ref(first))
    notes = []
    minutes = first_use.get("minutes_after_exposure") if first_use else None
    if isinstance(minutes, float) and 0 <= minutes <= 60:
        notes.append(f"first used {minutes:g} minutes after it was exposed: automated scanning of public "
                     "sources finds keys within minutes")
    if isinstance(age_days, int | float) and age_days >= LONG_LIVED_DAYS:
        notes.append(f"the key is {int(age_days)} days old: a long-lived key has had time to spread to "
                     "many places (laptops, CI, images)")
    if created and exposed_at and created > exposed_at:
        notes.append("the key was created after the reported exposure time: check the alert's key id")
    if key.get("last_used_at") and first_time and (last := parse_time(key.get("last_used_at"))) and last < first_time:
        notes.append("the key's last-used time predates the actor's first call: IAM's last-used data lags; "
                     "trust CloudTrail")
    best = causes[0] if causes else None
    channel = ("public_url" if url else "alert_only" if facts.get("detected_by") else "unknown")
    summary = _summary(facts, best, first_use, key)
    return {
        "summary": summary,
        "channel": channel,
        "detected_by": facts.get("detected_by"),
        "url": facts.get("url"),
        "repository": facts.get("repository"),
        "file": facts.get("file"),
        "commit": facts.get("commit"),
        "locations": facts.get("locations", []),
        "exposed_at": facts.get("exposed_at"),
        "finding_type": facts.get("finding_type"),
        "first_use": first_use,
        "key": {"access_key_id": key.get("access_key_id"), "owner": key.get("owner") or key.get("owner_arn"),
                "created_at": key.get("created_at"), "age_days": age_days, "last_used_at": key.get("last_used_at")},
        "likely_causes": causes,
        "confidence": best["confidence"] if best else "low",
        "evidence": evidence,
        "notes": notes,
    }


def _summary(facts: Mapping[str, Any], best: Mapping[str, Any] | None, first_use: Mapping[str, Any] | None,
             key: Mapping[str, Any]) -> str:
    owner = key.get("owner") or key.get("owner_arn")
    parts = []
    if facts.get("url"):
        parts.append(f"The key{' of ' + str(owner) if owner else ''} was exposed at {facts['url']}"
                     f"{' (found ' + str(facts['exposed_at']) + ')' if facts.get('exposed_at') else ''}.")
    elif facts.get("detected_by"):
        parts.append(f"Detected by {facts['detected_by']}; where the key leaked is not known from the alert.")
    else:
        parts.append("No alert says where the key leaked.")
    if best:
        parts.append(f"Most likely cause: {str(best['cause']).replace('_', ' ')} ({best['confidence']}).")
    if first_use:
        parts.append(f"First call of the incident: {first_use.get('event_name')} at {first_use.get('event_time')} "
                     f"from {first_use.get('source_ip')}.")
    return " ".join(parts)
