"""The suite's own test order (tests/conftest.py): each file's tests are shuffled by a seed every run,
so no test can lean on another of its file having run first; files stay whole and the seed replays."""

from __future__ import annotations

from dataclasses import dataclass

from ordering import shuffled_within_files


@dataclass
class Item:
    nodeid: str


def test_each_file_is_shuffled_in_place_whole_and_the_same_seed_gives_the_same_order() -> None:
    items = [Item(f"tests/{f}.py::test_{n}") for f in ("a", "b", "c") for n in range(20)]
    once = shuffled_within_files(items, 7)
    assert [i.nodeid.split("::")[0] for i in once] == [i.nodeid.split("::")[0] for i in items]
    assert sorted(i.nodeid for i in once) == sorted(i.nodeid for i in items)
    assert [i.nodeid for i in once] != [i.nodeid for i in items]
    assert [i.nodeid for i in shuffled_within_files(items, 7)] == [i.nodeid for i in once]
    assert [i.nodeid for i in shuffled_within_files(items, 8)] != [i.nodeid for i in once]
