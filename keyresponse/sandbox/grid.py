"""The robustness grid: does the analysis find every attacker credential, and no benign one, under
many backgrounds, windows, owner habits and attacker styles? (`bench/accuracy.py` runs it all;
`tests/keyresponse/sandbox/test_accuracy_grid.py` runs `TEST_CELLS`, 16 of them, and asserts the
targets.)

A cell is one simulated incident: a scenario played against the sandbox, written with a background
of `events_per_day` over `history_days` + `window_days`, the owner's `habit` and the attacker's
`style` (`keyresponse.sandbox.networks`, `keyresponse.sandbox.styles`), then investigated over
exactly the window its ground truth names, on DuckDB, as a responder would. Each scenario is
played once per sandbox; its calls are reused by every cell that needs it.

The grid is not the full cross product (8 scenarios x 4 habits x 6 styles x 7 volumes x 4 windows
would be thousands of incidents): it is one-axis sweeps around a base cell (pivot-chain, the
deepest credential chain; office NAT; burst from a VPS; 3,000 events a day; a one-day window
after a week of history), each changing one thing, plus the combinations known to be hard, and
no-attack controls. A failing sweep cell names the axis that breaks the analysis.

Per cell: attacker-credential recall (the truth's attacker credentials in the default containment
plan), benign credentials in that plan, uncertain credentials, and the verdict. The default plan
is the investigation's `credentials`, and nothing when the verdict is benign (the response flow
contains nothing then: flows/respond_to_exposed_key.py). The investigated key itself is not
counted as benign on a control: a responder asked about it; the control's target is its verdict.

Targets in every cell: 100 % recall, 0 benign credentials in the plan, and no `malicious`
verdict where nobody attacked (controls, and the false-positive scenario).
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from keyresponse.sandbox.networks import intel_config
from keyresponse.sandbox.scenarios import CONTROLS
from keyresponse.sandbox.server import MotoSandbox
from keyresponse.sandbox.simulate import PlayedAttack, play_attack, write_run

#: The end of every cell's logs (fixed: the same cell gives the same logs on every run).
GRID_END = datetime(2026, 11, 20, tzinfo=UTC)


@dataclass(frozen=True)
class Cell:
    """One simulated incident of the grid."""

    name: str
    why: str
    scenario: str = "pivot-chain"
    habit: str = "office-nat"
    style: str = "burst-vps"
    events_per_day: float = 3000
    window_days: float = 1.0
    history_days: float = 7.0

    @property
    def control(self) -> bool:
        return self.scenario in CONTROLS

    @property
    def window_label(self) -> str:
        return f"{self.window_days * 24:g}h" if self.window_days < 1 else f"{self.window_days:g}d"


BASE = Cell("base", "pivot-chain from a VPS, owner behind the office NAT, 3k events/day, 1 d after 7 d")
CONTROL = replace(BASE, name="control", scenario="no-attack", why="the base, nobody attacking")


def _sweep(prefix: str, values: list[Any], attribute: str, why: str, base: Cell = BASE) -> list[Cell]:
    return [replace(base, name=f"{prefix}-{label}", why=why, **{attribute: value}) for label, value in values]


def _grid() -> list[Cell]:
    cells = [BASE]
    cells += _sweep("bg", [("100", 100), ("1k", 1000), ("10k", 10_000), ("100k", 100_000)], "events_per_day",
                    "background volume: the only change from the base")
    cells += _sweep("window", [("6h", 0.25), ("7d", 7.0), ("90d", 90.0)], "window_days",
                    "window length: the only change from the base")
    cells += _sweep("habit", [(h, h) for h in ("residential", "ci-cloud", "traveller")], "habit",
                    "owner habit: the only change from the base")
    cells += [replace(BASE, name="style-slow-low", style="slow-low", window_days=7.0,
                      why="five days of sittings (needs a window that holds them: 7 d)")]
    cells += _sweep("style", [(s, s) for s in ("same-cloud", "owner-ua", "tor", "service-runtime")], "style",
                    "attacker style: the only change from the base")
    cells += [replace(BASE, name="history-0", history_days=0.0, why="a new key: no history before the window")]
    cells += _sweep("scenario", [(s, s) for s in ("recon-only", "scanner-validation", "persistence", "cryptomining",
                                                  "data-exfiltration", "llmjacking-ses", "false-positive")],
                    "scenario", "every other scenario at the base")
    cells += [
        replace(BASE, name="hard-quiet-6h", events_per_day=100, window_days=0.25,
                why="a quiet key and a short window: little to learn the owner from"),
        replace(BASE, name="hard-slow-low-90d", style="slow-low", window_days=90.0, events_per_day=1000,
                why="sittings over 5 days lost in a 90-day window"),
        replace(BASE, name="hard-same-cloud-ci", style="same-cloud", habit="ci-cloud",
                why="attacker in the same AWS prefixes as the owner's rotating CI runners"),
        replace(BASE, name="hard-owner-ua-home", style="owner-ua", habit="residential",
                why="owner's exact user agent while the owner's own address changes daily"),
        replace(BASE, name="hard-runtime-ci", style="service-runtime", habit="ci-cloud",
                why="all of the owner's use is from cloud addresses: CI runners and a Lambda runtime"),
        replace(BASE, name="hard-traveller-owner-ua", style="owner-ua", habit="traveller",
                why="the owner abroad on a new address the same day as the attacker with the owner's agent"),
        replace(BASE, name="hard-new-key-quiet", history_days=0.0, events_per_day=100,
                why="a new, quiet key: no history and little traffic"),
    ]
    cells += [CONTROL]
    cells += _sweep("control", [(h, h) for h in ("residential", "ci-cloud", "traveller")], "habit",
                    "nobody attacking, owner habit changed", CONTROL)
    cells += [
        replace(CONTROL, name="control-quiet-6h", events_per_day=100, window_days=0.25,
                why="nobody attacking a quiet key, a short window"),
        replace(CONTROL, name="control-new-key", history_days=0.0, why="nobody attacking a new key"),
        replace(CONTROL, name="control-runtime", style="service-runtime", habit="ci-cloud",
                why="nobody attacking; the key is also used by the owner's Lambda runtime"),
    ]
    return cells


GRID: list[Cell] = _grid()
CELLS: dict[str, Cell] = {cell.name: cell for cell in GRID}
LIGHT_EVENTS_PER_DAY = 1000


def light(cell: Cell) -> Cell:
    """The cell with at most 1,000 background events a day (named `<cell>@1k` when that changes it)."""
    if cell.events_per_day <= LIGHT_EVENTS_PER_DAY:
        return cell
    return replace(cell, name=f"{cell.name}@1k", events_per_day=LIGHT_EVENTS_PER_DAY)


#: The slow test's subset: the base and the control as in the grid, and one cell per habit, per
#: attacker style, per short window and quiet key, light (`light`) to keep the test short.
TEST_CELLS: tuple[Cell, ...] = (CELLS["base"], CELLS["control"], *(light(CELLS[name]) for name in (
    "bg-100", "window-6h", "habit-residential", "habit-ci-cloud", "habit-traveller", "style-same-cloud",
    "style-owner-ua", "style-tor", "style-service-runtime", "history-0", "hard-quiet-6h", "hard-same-cloud-ci",
    "control-quiet-6h", "control-runtime")))
#: Every cell by name: the grid's and the test subset's light ones.
ALL_CELLS: dict[str, Cell] = {**CELLS, **{cell.name: cell for cell in TEST_CELLS}}


@dataclass
class CellResult:
    cell: Cell
    attacker_found: int
    attacker_total: int
    benign_in_plan: list[str]
    uncertain: int
    verdict: str
    expected_verdict: str
    no_attack: bool
    events: int
    write_s: float
    investigate_s: float
    missed: list[str] = field(default_factory=list)
    #: addresses judged the attacker's that the truth says are not (an owner's home, the office NAT)
    wrong_attacker_ips: list[str] = field(default_factory=list)
    #: addresses the analysis could not attribute (shown to the approver with their reasons)
    uncertain_ips: list[str] = field(default_factory=list)
    #: what the analysis said about those addresses, and about uncertain credentials: its reasons
    said: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.attacker_found / self.attacker_total if self.attacker_total else 1.0

    @property
    def verdict_ok(self) -> bool:
        """The control's target: nobody attacked, so no `malicious`."""
        return not (self.no_attack and self.verdict == "malicious")

    @property
    def ok(self) -> bool:
        return self.recall == 1.0 and not self.benign_in_plan and self.verdict_ok

    def failures(self) -> list[str]:
        out = []
        if self.recall < 1.0:
            out.append(f"recall {self.attacker_found}/{self.attacker_total} (missed {', '.join(self.missed)})")
        if self.benign_in_plan:
            out.append(f"{len(self.benign_in_plan)} benign credential(s) in the plan: "
                       f"{', '.join(self.benign_in_plan[:4])}{' …' if len(self.benign_in_plan) > 4 else ''}")
        if not self.verdict_ok:
            out.append(f"verdict {self.verdict} where nobody attacked")
        return out


def scratch_root() -> Path | None:
    """A memory-backed folder for the cells' logs when the machine has one: a cell writes thousands
    of small files, and creating a file on a busy disk costs 0.15-0.7 ms against 0.02 ms in memory."""
    shm = Path("/dev/shm")  # noqa: S108 - only a parent: GridRunner makes its own folder in it (mkdtemp)
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def _objects(value: JsonValue) -> list[dict[str, JsonValue]]:
    """The objects of a JSON list (none of anything else)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strings(value: JsonValue) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def default_plan(full: Mapping[str, JsonValue]) -> list[str]:
    """The credentials the response would contain by default: none on a benign verdict."""
    if full["verdict"] == "benign":
        return []
    return [str(c["access_key_id"]) for c in _objects(full["credentials"])]


class GridRunner:
    """Plays each scenario once in `box` and runs cells against the played attacks."""

    def __init__(self, box: MotoSandbox, *, seed: int = 7, end: datetime = GRID_END, processes: int | None = None,
                 workers: int | None = None, scratch: Path | None = None, keep: bool = False) -> None:
        self.box, self.seed, self.end = box, seed, end
        self.processes, self.workers, self.keep = processes, workers, keep
        self.scratch = Path(tempfile.mkdtemp(prefix="keyresponse-grid-", dir=scratch or scratch_root()))
        self._played: dict[str, PlayedAttack] = {}
        self.play_s = 0.0

    def played(self, scenario: str) -> PlayedAttack:
        if scenario not in self._played:
            started = time.perf_counter()
            self._played[scenario] = play_attack(scenario, self.box, seed=self.seed, anchor=self.end)
            self.play_s += time.perf_counter() - started
        return self._played[scenario]

    def run(self, cell: Cell) -> CellResult:
        from keyresponse.engines.duckdb_engine import DuckDBEngine
        from keyresponse.investigation import Window, investigate

        played = self.played(cell.scenario)
        out = self.scratch / cell.name
        try:
            sim = write_run(played, out / "logs", events_per_day=cell.events_per_day, days=cell.window_days,
                            history_days=cell.history_days, habit=cell.habit, style=cell.style,
                            processes=self.processes)
            truth = sim.ground_truth
            window = Window(_parse(truth["investigate_window"]["start"]), _parse(truth["investigate_window"]["end"]))
            extra: dict[str, Any] = {}
            if "intel" in inspect.signature(investigate).parameters:  # the analysis may read the intel files
                extra["intel"] = intel_config(out / "logs", truth)
            started = time.perf_counter()
            with DuckDBEngine(out / "logs", cache_dir=out / "cache", workers=self.workers) as engine:
                full = investigate(engine, truth["compromised_access_key_id"], window, **extra).to_full_json()
            investigate_s = time.perf_counter() - started
        finally:
            if not self.keep:
                shutil.rmtree(out, ignore_errors=True)
        return measure(cell, truth, full, events=sim.records, write_s=sim.seconds, investigate_s=investigate_s)

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> GridRunner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def measure(cell: Cell, truth: Mapping[str, JsonValue], full: Mapping[str, JsonValue], *, events: int = 0,
            write_s: float = 0.0, investigate_s: float = 0.0) -> CellResult:
    """A cell's figures from its ground truth and the investigation's full JSON."""
    plan = default_plan(full)
    attacker = [str(c["access_key_id"]) for c in _objects(truth["attacker_credentials"])]
    investigated = truth["compromised_access_key_id"]
    benign = [k for k in plan if k not in set(attacker) and k != investigated]
    found = [k for k in attacker if k in set(plan)]
    judged = {str(ip["ip"]): ip.get("classification") for ip in _objects(full["source_ips"])}
    wrong = sorted(ip for ip, kind in judged.items()
                   if kind == "attacker" and ip not in set(_strings(truth["attacker_ips"])))
    return CellResult(cell, len(found), len(attacker), benign, len(_objects(full.get("uncertain_credentials"))),
                      str(full["verdict"]), str(truth["expected_verdict"]), not attacker, events, write_s,
                      investigate_s,
                      missed=[k for k in attacker if k not in set(plan)], wrong_attacker_ips=wrong,
                      uncertain_ips=sorted(ip for ip, kind in judged.items() if kind == "uncertain"),
                      said=_said(full, set(wrong)))


def _said(full: Mapping[str, JsonValue], wrong: set[str]) -> list[str]:
    out = [f"{ip['ip']} {ip.get('classification')} ({ip.get('confidence')}): {'; '.join(_strings(ip.get('evidence')))}"
           for ip in _objects(full["source_ips"]) if ip["ip"] in wrong or ip.get("classification") == "uncertain"]
    out += [f"credential {c['access_key_id']} uncertain: {'; '.join(_strings(c.get('reasons')))}"
            for c in _objects(full.get("uncertain_credentials"))]
    return out


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


HEADER = (f"{'cell':28} {'events/day':>10} {'window':>6} {'habit':12} {'style':16} {'recall':>7} {'benign':>6} "
          f"{'uncert':>6} {'ip-wrong':>8} {'ip-unc':>6} {'verdict (expected)':24} {'s':>5}  target")


def row(result: CellResult) -> str:
    cell = result.cell
    recall = f"{result.attacker_found}/{result.attacker_total}" if result.attacker_total else "-"
    verdict = f"{result.verdict} ({result.expected_verdict})"
    seconds = result.write_s + result.investigate_s
    mark = "ok" if result.ok else "FAIL"
    return (f"{cell.name:28} {cell.events_per_day:>10,.0f} {cell.window_label:>6} {cell.habit:12} {cell.style:16} "
            f"{recall:>7} {len(result.benign_in_plan):>6} {result.uncertain:>6} {len(result.wrong_attacker_ips):>8} "
            f"{len(result.uncertain_ips):>6} {verdict:24} {seconds:>5.1f}  {mark}")
