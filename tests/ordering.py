"""The suite's test order within a file (used by tests/conftest.py). A module of its own: a test that
imported `conftest` would run its top level again, and choose the session's Prefect server anew."""

from __future__ import annotations

import itertools
import random
from typing import Protocol, TypeVar


class Item(Protocol):
    nodeid: str


T = TypeVar("T", bound=Item)


def shuffled_within_files(items: list[T], seed: int) -> list[T]:
    """Each file's tests in a random order of `seed`, the files where they were: no test may depend on
    another test of its file having run first. Files are not interleaved, so module fixtures still set
    up once per file."""
    rng = random.Random(seed)
    out: list[T] = []
    for _, tests in itertools.groupby(items, key=lambda item: item.nodeid.split("::", 1)[0]):
        batch = list(tests)
        rng.shuffle(batch)
        out.extend(batch)
    return out
