"""Issue 17's targets on a representative subset of the robustness grid (`keyresponse.sandbox.grid`):
every attacker credential in the default containment plan, no benign credential in it, and no
`malicious` verdict where nobody attacked. `bench/accuracy.py` runs the whole grid and prints it.

Each cell is a real incident: a scenario played against a moto server of this module's own (the
attacks change the account), written with its background, window, owner habit and attacker style,
and investigated with DuckDB over the window the ground truth names.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keyresponse.sandbox.grid import TEST_CELLS, Cell, GridRunner
from keyresponse.sandbox.server import MotoSandbox

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runner() -> Iterator[GridRunner]:
    with MotoSandbox() as box, GridRunner(box, processes=1, workers=1) as grid:
        yield grid


@pytest.mark.parametrize("cell", TEST_CELLS, ids=lambda cell: cell.name)
def test_cell_meets_the_targets(runner: GridRunner, cell: Cell) -> None:
    result = runner.run(cell)
    why = f"{cell.name} ({cell.why}): {'; '.join(result.failures())}"
    assert result.attacker_found == result.attacker_total, why
    assert result.benign_in_plan == [], why
    if result.no_attack:
        assert result.verdict != "malicious", why

def test_the_subset_covers_every_axis_and_controls() -> None:
    cells = TEST_CELLS
    assert len(cells) >= 12
    assert {c.habit for c in cells} == {"office-nat", "residential", "ci-cloud", "traveller"}
    assert {c.style for c in cells} >= {"burst-vps", "same-cloud", "owner-ua", "tor", "service-runtime"}
    assert sum(c.control for c in cells) >= 2
    assert {c.window_days for c in cells} >= {0.25, 1.0} and min(c.events_per_day for c in cells) <= 100
