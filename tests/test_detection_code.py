"""Detection code knows nothing of the simulator.

A detector that names the test data passes the tests and fails on the first real incident: no
scenario name, address, account, key id or key-id prefix of the simulator may appear in detection
code. The values are read from the simulator's own source (every string in keyresponse/sandbox/),
so the check keeps up when a scenario, an address or an account is added there.

Detection code is keyresponse/ (all but the simulator: keyresponse/sandbox/, and the commands that
drive it: keyresponse/demo.py, keyresponse/cli/sandbox.py, keyresponse/cli/simulate.py), tasks/,
flows/ and queries/. Query files are checked whole, header included: a header's examples are
what a reader copies, and they are bound by the contract tests.

Two scenario names are left out: `persistence` and `cryptomining` are also intents
(keyresponse/intel/data/intents.yaml), the vocabulary detection is written in; the check reads
that vocabulary from the rules, so a scenario named after anything else is still caught.
"""

from __future__ import annotations

import ast
import ipaddress
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pytest
from moto.iam.utils import generate_access_key_id_from_account_id

from keyresponse.intel.intent import LABELS, default_rules
from keyresponse.sandbox.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = ROOT / "keyresponse" / "sandbox"
DRIVERS = {ROOT / "keyresponse" / "demo.py", ROOT / "keyresponse" / "cli" / "sandbox.py",
           ROOT / "keyresponse" / "cli" / "simulate.py"}
SUFFIXES = {".py", ".sql", ".yaml", ".yml", ".json", ".j2"}
_KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")


def detection_files() -> list[Path]:
    out = []
    for top in ("keyresponse", "tasks", "flows", "queries"):
        for path in sorted((ROOT / top).rglob("*")):
            if (path.suffix in SUFFIXES and path.is_file() and SANDBOX not in path.parents
                    and path not in DRIVERS and "__pycache__" not in path.parts):
                out.append(path)
    return out


def _sandbox_strings() -> Iterator[str]:
    """Every string literal of the simulator's source, f-string pieces included."""
    for path in sorted(SANDBOX.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield node.value


def _address(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)  # 127.0.0.1 is where any local server listens


@lru_cache(maxsize=1)
def simulator_values() -> dict[str, frozenset[str]]:
    """What the simulator uses, by kind: scenario names, addresses, accounts, key ids and prefixes."""
    strings = set(_sandbox_strings())
    accounts = {s for s in strings if re.fullmatch(r"\d{12}", s)}
    vocabulary = {rule.intent for rule in default_rules()} | set(LABELS)
    # moto, the simulator's AWS, derives its key ids from the account: AKIA + 8 characters of it
    prefixes = {generate_access_key_id_from_account_id(a, p)[:12] for a in accounts for p in ("AKIA", "ASIA")}
    return {"scenario": frozenset(set(SCENARIOS) - vocabulary),
            "address": frozenset(s for s in strings if _address(s)),
            "account": frozenset(accounts),
            "key id": frozenset({s for s in strings if _KEY_ID.match(s)} | prefixes)}


def _pattern(kind: str, value: str) -> re.Pattern[str]:
    edge = {"scenario": r"[\w-]", "address": r"[\w.:]", "account": r"\d", "key id": r"[A-Z0-9]"}[kind]
    tail = "" if kind == "key id" and len(value) < 20 else f"(?!{edge})"  # a prefix starts longer ids
    return re.compile(f"(?<!{edge}){re.escape(value)}{tail}")


def test_the_simulator_values_are_found_where_they_live() -> None:
    """The check can fail: it finds the simulator's values in the simulator's own source."""
    values = simulator_values()
    assert {"pivot-chain", "recon-only"} <= values["scenario"] and "persistence" not in values["scenario"]
    assert {"185.220.101.34", "198.51.100.23", "3.91.171.44"} <= values["address"]
    assert {"123456789012", "999988887777"} <= values["account"]
    assert {"AKIASANDBOXRESPONDER", "AKIARZPUZDIK"} <= values["key id"]
    scenarios = (SANDBOX / "scenarios.py").read_text()
    assert all(_pattern("address", ip).search(scenarios) for ip in ("185.220.101.34", "45.134.26.19"))


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[str, str, re.Pattern[str]]]:
    return [(kind, value, _pattern(kind, value)) for kind, values in simulator_values().items()
            for value in sorted(values)]


@pytest.mark.parametrize("path", detection_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_detection_code_names_no_simulator_value(path: Path) -> None:
    found = [f"{path.relative_to(ROOT)}:{number}: names the simulator's {kind} {value!r}"
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             for kind, value, pattern in _patterns() if pattern.search(line)]
    assert not found, "\n".join(found)
