"""Every scenario, played once per module in a sandbox of its own (so the session's seeded account
stays as the seed left it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.scenarios import SCENARIOS
from keyresponse.sandbox.seed import SeededAccount, seed_account
from keyresponse.sandbox.simulate import SimulationResult, run_simulation

END = datetime(2026, 11, 20, tzinfo=UTC)


class Played:
    def __init__(self, box: MotoSandbox, account: SeededAccount, results: dict[str, SimulationResult]) -> None:
        self.box, self.account, self.results = box, account, results


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    with MotoSandbox() as box:
        account = seed_account(box)
        results = {name: run_simulation(scenario=name, out=tmp_path_factory.mktemp(name), events=1500,
                                        sandbox=box, anchor=END, processes=1)
                   for name in SCENARIOS}
        yield Played(box, account, results)
