"""A burst of alerts against the real receiver, Prefect server and runner (`keyresponse serve`).

The small version of bench/load.py (which holds the harness and runs 500 alerts about 25 keys):
60 alerts about 6 keys, every source mixed, a third of them redeliveries. Containment pauses are
approved, eradication pauses denied (see bench/load.py), so each run ends right after containment.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("keyresponse_bench_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def burst(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    load = _bench()
    result = load.run_load(alerts=60, keys=6, api_url=prefect_server, folder=tmp_path_factory.mktemp("load"),
                           concurrency=20, finish_timeout=480)
    print(f"\nload: {result.figures()}")
    return result


@pytest.mark.slow
def test_burst_of_60_alerts_about_6_keys_is_6_incidents_and_loses_nothing(burst: Any) -> None:
    figures = burst.figures()
    assert figures["http_statuses"] == {202: 60}, figures
    assert figures["incidents"] == 6 and figures["parent_runs"] == 6, figures
    assert figures["spool_records"] == figures["distinct_alerts"] and figures["spool_pending"] == 0, figures
    assert figures["lost_alerts"] == 0, figures
    by_incident: dict[str, set[str]] = {}
    for sent in burst.alerts:
        by_incident.setdefault(sent.answer["incident_id"], set()).add(sent.key)
    assert all(len(keys) == 1 for keys in by_incident.values()), "an incident spans two keys"
    assert len({next(iter(keys)) for keys in by_incident.values()}) == 6, "a key has two incidents"


@pytest.mark.slow
def test_burst_of_60_alerts_about_6_keys_contains_every_key(burst: Any) -> None:
    figures = burst.figures()
    assert figures["run_states"] == {"Completed": 6}, figures
    assert figures["keys_not_contained"] == [] and figures["keys_inactive"] == 6, figures
