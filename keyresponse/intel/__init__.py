"""The playbook's five questions about an incident, answered from its events, with evidence.

    answers = answer_five_questions(events, investigation, alert_source="health", alert_payload=raw,
                                    key_facts={"created_at": …, "owner": …}, intel_config={…})

Pure functions: no AWS calls, no network (range URLs are fetched only through an injected `fetch`
and cached). `events` are the actor's `queries/key_events.sql` rows; `investigation` is the
Investigation JSON of docs/architecture.md. Every answer carries its evidence (event id, time, name) and a
confidence word: `high`, `medium` or `low`. Nothing here raises on odd input: unknown user
agents, private or malformed IPs, missing range files become an honest "unknown" with a note.

**exposure** — how the key leaked (`exposure.assess_exposure`)
  `summary` (sentence), `channel` (public_url | alert_only | unknown), `detected_by`
  (aws_health | github_secret_scanning | guardduty | securityhub | …), `url` (read from the alert's
  structured fields only: a Health event's `eventMetadata`, GitHub's repository `html_url` with the
  location's commit and path; never a URL in a description), `repository`, `file`,
  `commit`, `locations` ([{type, file, commit, start_line, url}] from GitHub's alert API),
  `exposed_at`, `finding_type`, `first_use` ({event_id, event_time, event_name, source_ip,
  user_agent, minutes_after_exposure} or null), `key` ({access_key_id, owner, created_at, age_days,
  last_used_at}), `likely_causes` ([{cause, confidence, reasoning}], most likely first; causes:
  hard_coded_in_code, leaked_environment_variable, committed_credentials_file, pasted_publicly,
  published_online, ssrf_instance_metadata, phishing, malware_or_local_theft, not_yet_abused),
  `confidence`, `evidence`, `notes`.

**tools_observed** — tools and behaviour (`tools.tools_observed`), a list of
  {`tool`, `category` (secret_scanner | attack_framework | attack_simulation | security_auditor |
  pentest_distribution | s3_client | cli | sdk | console | iac | http_client | browser |
  hostile_markup | aws_service | behaviour | unknown), `evidence` (event ids), `evidence_events`,
  `first_seen`, `count`, `user_agents`, `confidence`, `note`, `sources` (URLs documenting the
  fingerprint)}; behaviour items add `fingerprint` (key_validation | enumeration_burst |
  permission_bruteforce | region_sweep | bulk_s3_download) and their measurements.

**intent** — what the actor was after (`intent.classify_intent`)
  {`primary` (intent name or null), `summary` (sentence), `intents`: [{`intent`
  (validation_only | owner_use | reconnaissance | persistence | privilege_escalation |
  cryptomining | data_theft | spam_phishing | llm_abuse | destruction_ransom | defense_evasion |
  remote_access | cleanup), `label`, `confidence`, `score` (0..1), `priority`, `evidence`,
  `evidence_count`, `attempted_only`, `reasons`, `primary`}]}. Deleting what the actor itself
  created earlier in the events is `cleanup`, never `destruction_ransom`; the summary says when
  every call of the primary intent was refused.

**attribution** — who is behind each source address (`attribution.attribute_ips`)
  {`ips`: [{`ip`, `kind` (cloud | public | private | reserved | documentation | malformed |
  aws_service | unknown), `provider` (aws | gcp | azure | null), `service`, `region`, `prefix`,
  `tor_exit` (true | false | null = no Tor list loaded), `lists` ([{list, match, label}]),
  `confidence`, `notes`, `event_count`, `first_seen`, `last_seen`, `evidence`, `user_agents`}],
  `external_accounts` ([{account_id, evidence, count, note, principals?}]: outside AWS accounts named
  in the actor's requests, and the accounts of the investigation's `attacker_infrastructure` with
  the principals the attacker holds there), `sources_loaded`, `notes` (what could not be loaded),
  `summary`}.

**damage** — what it cost (`damage.assess_damage`)
  {`summary` (one sentence for a report's first page), `resources_created` (as the
  investigation lists them; from the create calls when it lists none), `resources_changed` /
  `resources_deleted` ([{event_name, resource, region, event_time, event_id}]; deletions of what
  the actor created itself are cleanup, in `notes`), `data_read` ([{event_name, resource, count,
  evidence}]), `secrets_to_rotate`, `objects_read`, `cost_estimate` ({total_usd,
  ongoing_usd_per_day, items, assumptions, as_of, confidence}: `cost.estimate_cost`, the one
  estimate the investigation's `cost_estimate_usd` shows too; an instance counts from launch to its
  TerminateInstances or to the end of the window, and only the unterminated are "still running"),
  `verdict`, `confidence`, `evidence`, `notes`}.

Damage, intent and the investigation's `data_access` read calls through one classification,
`keyresponse/intel/taxonomy.py` (read_secret, read_data, share_data, read, create, delete, change,
iam_change, other): the summary says "nothing read" only when no data or secret read succeeded, so
it never stands beside a data-read list or a data-theft intent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from pydantic import JsonValue

from keyresponse.intel.attribution import AttributionAnswer, IntelConfig, attribute_ips
from keyresponse.intel.damage import assess_damage
from keyresponse.intel.events import Event, event_from_record, sorted_events
from keyresponse.intel.exposure import assess_exposure
from keyresponse.intel.intent import Intent, classify_intent, primary_intent
from keyresponse.intel.tools import tools_observed

__all__ = ["IntelConfig", "answer_five_questions", "assess_damage", "assess_exposure", "attribute_ips",
           "classify_intent", "event_from_record", "intent_answer", "tools_observed"]


class IntentAnswer(TypedDict):
    """The intent answer: the primary intent, a sentence, and every intent (`classify_intent`)."""

    primary: str | None
    summary: str
    intents: list[Intent]


def intent_answer(events: Iterable[Event], baseline: Mapping[str, object] | None = None) -> IntentAnswer:
    """`classify_intent` with the primary intent and a sentence on top."""
    intents = classify_intent(events, baseline=baseline)
    primary = primary_intent(intents)
    if primary is None:
        summary = "No calls by the actor: no intent can be inferred."
    else:
        others = [f"{i['label'].lower()} ({i['confidence']}{', attempted only' if i['attempted_only'] else ''})"
                  for i in intents if not i["primary"]]
        tried = ", attempted only: every call was refused" if primary["attempted_only"] else ""
        summary = (f"Primary intent: {primary['label'].lower()} ({primary['confidence']} confidence{tried})"
                   + (f"; also {', '.join(others)}" if others else "") + ".")
    return {"primary": primary["intent"] if primary else None, "summary": summary, "intents": intents}


class FiveAnswers(TypedDict):
    """The five answers (the package docstring says what each holds)."""

    exposure: dict[str, JsonValue]
    tools_observed: list[dict[str, Any]]
    intent: IntentAnswer
    attribution: AttributionAnswer
    damage: dict[str, Any]


def answer_five_questions(events: Iterable[Event], investigation: Mapping[str, JsonValue] | None,
                          alert_source: str | None = None, alert_payload: Mapping[str, JsonValue] | None = None,
                          key_facts: Mapping[str, JsonValue] | None = None,
                          intel_config: IntelConfig | Mapping[str, object] | None = None, *,
                          baseline: Mapping[str, object] | None = None,
                          github_locations: Iterable[Mapping[str, JsonValue]] | None = None) -> FiveAnswers:
    """The five answers: {"exposure", "tools_observed", "intent", "attribution", "damage"}."""
    ordered = sorted_events(events)
    config = IntelConfig.from_mapping(intel_config)
    infrastructure = (investigation or {}).get("attacker_infrastructure") or []
    attribution = attribute_ips(ordered, config, attacker_infrastructure=[
        item for item in (infrastructure if isinstance(infrastructure, list) else []) if isinstance(item, dict)])
    exposure = assess_exposure(alert_source, alert_payload, key_facts, ordered[0] if ordered else None,
                               github_locations=list(github_locations or []) or None,
                               ip_attribution=attribution)
    return {
        "exposure": exposure,
        "tools_observed": tools_observed(ordered),
        "intent": intent_answer(ordered, baseline=baseline or config.baseline),
        "attribution": attribution,
        "damage": assess_damage(investigation, events=ordered),
    }
