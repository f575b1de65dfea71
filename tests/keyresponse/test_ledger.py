"""The ledger appends, reads back, and knows what is left to undo."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyresponse.errors import InputError
from keyresponse.ledger import Ledger, LedgerCorrupt, LedgerEntry


def _entry(action: str, **kw: object) -> LedgerEntry:
    return LedgerEntry(incident_id="ir-1", action=action, target={"kind": "user", "id": "u"}, before={"a": 1},
                       after={"a": 2}, **kw)  # type: ignore[arg-type]


def test_lists_undo_order_newest_first_and_skips_undone_when_replayed(tmp_path: Path) -> None:
    ledger = Ledger("ir-1", tmp_path)
    first, second = ledger.append(_entry("one")), ledger.append(_entry("two"))
    assert ledger.path == tmp_path / "incidents" / "ir-1" / "ledger.jsonl"
    assert [e.action for e in ledger.to_undo()] == ["two", "one"]
    ledger.append(_entry("two", kind="undo", undoes=second.entry_id))
    assert [e.entry_id for e in ledger.to_undo()] == [first.entry_id]
    assert [e.action for e in Ledger("ir-1", tmp_path).applied()] == ["one", "two"]


def test_reports_a_torn_line_when_the_file_is_corrupt(tmp_path: Path) -> None:
    ledger = Ledger("ir-1", tmp_path)
    ledger.append(_entry("one"))
    with open(ledger.path, "a") as handle:
        handle.write('{"incident_id": "ir-1", "act')
    with pytest.raises(LedgerCorrupt, match=r"ledger\.jsonl:2"):
        ledger.entries()


def test_rejects_incident_ids_that_could_escape_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        Ledger("../etc", tmp_path)
    with pytest.raises(InputError):
        Ledger("ir-1", tmp_path).append(_entry("x").model_copy(update={"incident_id": "ir-2"}))
