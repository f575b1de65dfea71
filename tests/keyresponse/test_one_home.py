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

import keyresponse.intel.damage
import keyresponse.intel.taxonomy
import keyresponse.report
from keyresponse.intel.taxonomy import ACTIVITIES, ATTACK, DATA_CALLS, HIGH_RISK_CALLS, category_of

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
    assert keyresponse.report.categorize is taxonomy.category_of
    assert [(lane.key, lane.label) for lane in keyresponse.report.CATEGORIES] == [(a.key, a.label) for a in ACTIVITIES]
    assert keyresponse.report.SECRET_READS is taxonomy.SECRET_READS
    assert keyresponse.report.OBJECT_READS is taxonomy.OBJECT_READS
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
