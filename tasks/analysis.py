"""Prefect tasks of the ANALYSIS phase: validate the key, scope its credential graph, assess impact.

Reads only, so every task may retry; the DuckDB engine's on-disk cache makes a retry (and the
second task's engine) cheap.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from keyresponse.investigation import Investigator, Scope, Window, open_engine
from keyresponse.retry import retry_on_transient
from keyresponse.settings import get_settings
from keyresponse.validation import KeyFacts, validate_key


@task(name="validate_key", task_run_name="validate_key:{access_key_id}", retries=2, retry_delay_seconds=[1, 5], retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_transient)
def validate_key_task(access_key_id: str) -> dict[str, Any]:
    """Which account owns the key, whose it is, status, age, last use, quarantine policy."""
    facts = validate_key(access_key_id, accounts_in_scope=get_settings().accounts_in_scope)
    log = get_run_logger()
    if facts.not_ours:
        log.warning("%s belongs to account %s, which is not in scope: not ours", access_key_id, facts.account_id)
    else:
        log.info("%s: owner %s, status %s, age %s days, quarantine %s", access_key_id, facts.owner,
                 facts.status, facts.age_days, facts.quarantine_policies or "none")
    return facts.to_json()


def _window(window: dict[str, str]) -> Window:
    return Window.parse(window["start"], window["end"])


@task(name="scope_key", task_run_name="scope_key:{access_key_id}", retries=1, retry_delay_seconds=5, retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_transient)
def scope_key(access_key_id: str, window: dict[str, str], logs: str | None = None,
              known_ips: list[str] | None = None, attacker_ips: list[str] | None = None) -> dict[str, Any]:
    """The credential graph: every credential derived from the key, repeated to a fixpoint."""
    log = get_run_logger()
    with open_engine(logs) as engine:
        scope = Investigator(engine, access_key_id, _window(window), known_ips=known_ips or (),
                             attacker_ips=attacker_ips or (), progress=log.info,
                             intel=get_settings().intel).scope()
    log.info("scoped %d credential(s) in %d round(s); attacker IPs %s; uncertain IPs %s, credentials %s",
             len(scope.credentials), scope.rounds, sorted(scope.attacker_ips), sorted(scope.uncertain_ips),
             sorted(scope.uncertain_credentials))
    return scope.to_json()


@task(name="assess_impact", task_run_name="assess_impact:{access_key_id}", retries=1, retry_delay_seconds=5, retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_transient)
def assess_impact(access_key_id: str, scope: dict[str, Any], window: dict[str, str], logs: str | None = None,
                  facts: dict[str, Any] | None = None, alert_source: str | None = None,
                  alert_payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Resources, data, regions, cost, severity, verdict, and the playbook's five answers."""
    with open_engine(logs) as engine:
        investigator = Investigator(engine, access_key_id, _window(window),
                                    accounts_in_scope=get_settings().accounts_in_scope)
        result = investigator.assess(Scope.from_json(scope), KeyFacts(**facts) if facts else None)
        full = result.to_full_json()
        full.update(result.answers(alert_source, alert_payload, get_settings().intel))
        full["events"] = result.events
    get_run_logger().info("verdict %s, severity %s, %d attacker events", full["verdict"], full["severity"],
                          full["event_count"])
    return full
