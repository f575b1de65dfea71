"""One home for each fact: the activity categories of calls and the cost estimate are defined once.

The issue measured two cost estimators disagreeing inside one report and event categories kept in
five places. These tests hold the fix: every consumer uses the very object `keyresponse.intel`
defines (checked by identity, not by equal values), no module keeps a private list of event names
(checked on the source, so re-adding one fails here), the categories assign every call we know of
as the report's own lists did (a golden file written from them before they moved), and one report
shows one cost.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import keyresponse.intel.cost
import keyresponse.intel.damage
import keyresponse.intel.taxonomy
import keyresponse.investigation
import keyresponse.report.attack
import keyresponse.report.figures
import keyresponse.report.rules
from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.incident import Incident, make_incident
from keyresponse.intel import assess_damage, event_from_record
from keyresponse.intel.taxonomy import ACTIVITIES, ATTACK, DATA_CALLS, HIGH_RISK_CALLS, category_of
from keyresponse.investigation import Investigation, Window, investigate
from keyresponse.report import render_html, render_markdown

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "taxonomy" / "categories.golden.json"
#: Where a private list would live: the product's code.
SCANNED = ("keyresponse", "tasks", "flows")
#: The home itself, and the simulator: it plays attacks, and its ground truth must not be read
#: through the code it tests.
EXEMPT = ("keyresponse/intel/taxonomy.py", "keyresponse/sandbox/")
#: A literal holding this many event names the taxonomy classifies is a private list of them.
LIST_SIZE = 3


# -- by identity ------------------------------------------------------------------------------------


def test_the_report_reads_the_categories_of_the_taxonomy() -> None:
    taxonomy = keyresponse.intel.taxonomy
    assert keyresponse.report.attack.categorize is taxonomy.category_of
    assert [(lane.key, lane.label) for lane in keyresponse.report.attack.CATEGORIES] == [
        (a.key, a.label) for a in ACTIVITIES]
    assert keyresponse.report.attack.SECRET_READS is taxonomy.SECRET_READS
    assert keyresponse.report.rules.SECRET_READS is taxonomy.SECRET_READS
    assert keyresponse.report.rules.OBJECT_READS is taxonomy.OBJECT_READS
    assert keyresponse.intel.damage.STORED_SECRET_READS is taxonomy.STORED_SECRET_READS


def test_every_category_has_a_home_and_each_call_one_category() -> None:
    keys = [a.key for a in ACTIVITIES]
    assert keys == ["recon", "credentials", "persistence", "data_access", "compute", "defense_evasion", "other"]
    named = [name for a in ACTIVITIES for name in a.events]
    assert len(named) == len(set(named)), "a call listed in two categories"


def test_attack_ids_are_ones_we_name_and_techniques_name_calls_of_their_category() -> None:
    for activity in ACTIVITIES:
        for tactic in activity.tactics:
            assert re.fullmatch(r"TA\d{4}", tactic) and tactic in ATTACK, tactic
        for call, technique in activity.techniques.items():
            assert re.fullmatch(r"T\d{4}(\.\d{3})?", technique) and technique in ATTACK, technique
            assert call in activity.events, (activity.key, call)
    by_key = {a.key: a for a in ACTIVITIES}
    assert by_key["defense_evasion"].tactics == ("TA0005",)
    assert by_key["defense_evasion"].techniques["StopLogging"] == "T1562.008"
    assert by_key["credentials"].techniques["CreateAccessKey"] == "T1098.001"
    assert by_key["compute"].techniques["RunInstances"] == "T1496"
    assert by_key["recon"].tactics == ("TA0007",) and "TA0003" in by_key["persistence"].tactics


def test_categories_assign_every_known_call_as_the_reports_own_lists_did() -> None:
    """tests/fixtures/taxonomy/categories.golden.json was written by the report's `categorize` before
    its lists moved here: every call of those lists, of the taxonomy, of the Stratus detonation, the
    pivot-chain incident and the eight scenarios, and names that probe the prefix rules."""
    golden: dict[str, str] = json.loads(GOLDEN.read_text())
    assert len(golden) > 250
    got = {key: category_of({"event_source": key.split(":", 1)[0], "event_name": key.split(":", 1)[1]})
           for key in golden}
    assert got == golden


# -- no private lists --------------------------------------------------------------------------------


def _known_calls() -> frozenset[str]:
    listed = {name for a in ACTIVITIES for name in a.events}
    return frozenset(listed | {name for _, name in DATA_CALLS} | HIGH_RISK_CALLS)


def private_lists(source: str, known: frozenset[str]) -> list[tuple[int, list[str]]]:
    """(line, names) of every set, list, tuple or dict literal holding `LIST_SIZE` or more known
    event names (a `frozenset({...})` holds a set literal)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            elements: list[ast.expr | None] = list(node.keys)
        elif isinstance(node, ast.Set | ast.List | ast.Tuple):
            elements = list(node.elts)
        else:
            continue
        names = [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)
                 and e.value in known]
        if len(set(names)) >= LIST_SIZE:
            found.append((node.lineno, names))
    return found


def test_the_check_finds_a_private_list_of_any_shape() -> None:
    known = _known_calls()
    for source in ('_CATEGORY_EVENTS = {"credentials": frozenset({"CreateAccessKey", "GetSessionToken", "AssumeRole"})}',
                   'RISKY = {"CreateAccessKey", "RunInstances", "StopLogging"}',
                   'SECRETS = ("GetSecretValue", "GetParameter", "GetParameters")',
                   'LANE = {"RunInstances": "compute", "StopLogging": "x", "CreateUser": "y"}',
                   'def f(e):\n    return e in ["GetObject", "PutObject", "DeleteObject"]'):
        assert private_lists(source, known), source
    assert not private_lists('PAIR = ("GetSessionToken", "GetFederationToken")', known)


def test_no_module_keeps_a_private_list_of_event_names() -> None:
    """The taxonomy is the one place that lists calls by what they do; a module that needs such a
    list imports it from there (or derives it, as `taxonomy.SECRET_READS` is derived)."""
    known = _known_calls()
    offenders = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(EXEMPT):
                continue
            if found := private_lists(path.read_text(encoding="utf-8"), known):
                offenders[rel] = found
    assert not offenders, offenders


# -- one cost -----------------------------------------------------------------------------------------


def test_every_consumer_of_the_cost_uses_the_one_estimate() -> None:
    cost = keyresponse.intel.cost
    assert keyresponse.investigation.estimate_cost is cost.estimate_cost
    assert keyresponse.intel.damage.estimate_cost is cost.estimate_cost
    assert keyresponse.report.figures.recorded_cost is cost.recorded_cost
    assert keyresponse.report.attack.recorded_cost is cost.recorded_cost
    assert not hasattr(Investigation, "cost_estimate")  # the investigation's own estimator, gone


#: What pricing needs: a second estimator would name one of these.
PRICE_WORDS = ("prices.yaml", "default_prices", "ec2_hourly_usd", "bedrock_per_1k_tokens", "hourly_usd")


def test_no_other_module_prices_anything() -> None:
    """Only keyresponse/intel/cost.py defines a function about cost or price, or reads the price table."""
    offenders = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "keyresponse/intel/cost.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and re.search(
                        r"cost|price", node.name, re.IGNORECASE) and node.name != "_summary":
                    offenders.append(f"{rel}:{node.lineno} def {node.name}")
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in PRICE_WORDS:
                    offenders.append(f"{rel}:{node.lineno} {node.value!r}")
                if isinstance(node, ast.alias) and node.name in PRICE_WORDS:
                    offenders.append(f"{rel}:{node.lineno} import {node.name}")
    assert not offenders, offenders


AMOUNT = r"(\d[\d,]*\.\d\d)"
DOLLARS = re.compile(r"\$" + AMOUNT)


def _cost_figures(md: str, html: str) -> dict[str, set[str]]:
    """Every place the report states the estimated cost, with the figures it states there."""
    return {
        "summary figure (md)": set(re.findall(r"\| estimated cost \\\(USD\\\) \| " + AMOUNT + r" \|", md)),
        "summary figure (html)": set(re.findall(r'data-figure="cost"[^>]*><div class="value">' + AMOUNT + "<", html)),
        "impact (md)": set(re.findall(r"Estimated cost of attacker resources: \*\*\$" + AMOUNT + r"\*\*", md)),
        "impact (html)": set(re.findall(r"Estimated cost of attacker resources: <strong>\$" + AMOUNT, html)),
        "intel: damage summary": set(re.findall(r"estimated cost so far \$" + AMOUNT, md)),
        "intel: cost estimate": set(re.findall(r'"total_usd":(\d+(?:\.\d+)?)', md)),
        "every dollar amount (md)": set(DOLLARS.findall(md)),
        "every dollar amount (html)": set(DOLLARS.findall(html)),
    }


def _one_figure(incident: Incident) -> str:
    found = _cost_figures(render_markdown(incident), render_html(incident))
    assert all(found.values()), {where: figures for where, figures in found.items() if not figures}
    figures = set().union(*found.values())
    assert len({float(f) for f in figures}) == 1, found
    return figures.pop()


def test_the_llmjacking_report_shows_one_cost(played: Any, tmp_path: Path) -> None:
    """The scenario the issue measured ($0.00 in the summary, $0.25 in the intelligence section), played
    and analysed as the flow does (`tasks.analysis.assess_impact`), rendered in both formats."""
    result = played.results["llmjacking-ses"]
    truth = result.ground_truth
    window = Window.parse(truth["investigate_window"]["start"], truth["investigate_window"]["end"])
    with DuckDBEngine(result.out, cache_dir=tmp_path) as engine:
        analysed = investigate(engine, truth["compromised_access_key_id"], window)
        full = analysed.to_full_json() | analysed.answers()
        events = [dict(e) for e in analysed.events]
    incident = Incident.model_validate({"incident_id": "ir-llmjacking-ses", "status": "closed",
                                        "investigation": full, "events": events})
    # 12 InvokeModel calls on Claude 3 Sonnet: 12 x (2 x $0.003 + 1 x $0.015), the Bedrock bill
    assert _one_figure(incident) == "0.25"


def test_a_record_with_two_estimates_shows_the_damage_answers_in_every_place() -> None:
    """A record written when the investigation priced EC2 only: `cost_estimate_usd` 0.0 beside a damage
    answer that priced the Bedrock calls. The report shows one figure, the damage answer's."""
    calls = [event_from_record({
        "eventTime": f"2026-11-19T19:0{i}:00Z", "eventSource": "bedrock.amazonaws.com", "eventName": "InvokeModel",
        "awsRegion": "us-east-1", "sourceIPAddress": "45.134.26.19", "eventID": f"e{i}",
        "userIdentity": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE"},
        "requestParameters": {"modelId": "anthropic.claude-3-sonnet-20240229-v1:0"}}) for i in range(4)]
    damage = assess_damage({"verdict": "malicious", "window": {"end": "2026-11-20T00:00:00Z"}}, events=calls)
    assert damage["cost_estimate"]["total_usd"] == 0.08  # 4 x $0.021
    incident = make_incident(investigation={"cost_estimate_usd": 0.0, "damage": damage, "event_count": 4,
                                            "verdict": "malicious", "severity": "P3"})
    assert _one_figure(incident) == "0.08"
