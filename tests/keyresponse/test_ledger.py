"""The ledger appends, reads back, and knows what is left to undo."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyresponse.errors import InputError
from keyresponse.ledger import Ledger, LedgerCorrupt, LedgerEntry, in_effect


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


def test_in_effect_keeps_the_changes_no_undo_reversed_and_no_dry_run(tmp_path: Path) -> None:
    """What the report, the undo and "left in place" count as a change still in effect: one rule."""
    ledger = Ledger("ir-1", tmp_path)
    kept, undone = ledger.append(_entry("kept")), ledger.append(_entry("undone"))
    ledger.append(_entry("rehearsed", dry_run=True))
    ledger.append(_entry("undone", kind="undo", undoes=undone.entry_id))
    later = ledger.append(_entry("later"))
    assert [e.entry_id for e in in_effect(ledger.entries())] == [kept.entry_id, later.entry_id]
    assert [e.entry_id for e in ledger.to_undo()] == [later.entry_id, kept.entry_id]


def test_reads_past_a_torn_last_line_and_reports_it(tmp_path: Path) -> None:
    """A crash mid-append leaves a last line without its newline: read without it, and said."""
    ledger = Ledger("ir-1", tmp_path)
    first = ledger.append(_entry("one"))
    torn = _entry("two").model_dump_json()[:40]
    with open(ledger.path, "a") as handle:
        handle.write(torn)
    assert [e.entry_id for e in ledger.entries()] == [first.entry_id]
    assert ledger.torn is not None and (ledger.torn.line, ledger.torn.text) == (2, torn)
    assert "torn last line" in ledger.torn.describe()
    # the next append moves the torn bytes aside first: they never become a middle line
    third = ledger.append(_entry("three"))
    assert [e.entry_id for e in ledger.entries()] == [first.entry_id, third.entry_id] and ledger.torn is None
    [kept] = ledger.folder.glob("ledger.torn-*")
    assert kept.read_text() == torn


def test_ends_a_whole_last_entry_that_lost_only_its_newline(tmp_path: Path) -> None:
    ledger = Ledger("ir-1", tmp_path)
    whole = _entry("one")
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_text(whole.model_dump_json())
    second = ledger.append(_entry("two"))
    assert [e.entry_id for e in ledger.entries()] == [whole.entry_id, second.entry_id]
    assert list(ledger.folder.glob("ledger.torn-*")) == []


def test_raises_on_a_corrupt_line_that_is_not_the_torn_last_one(tmp_path: Path) -> None:
    """Never silently drop a line in the middle (a hand edit), nor a whole last line that does not parse."""
    ledger = Ledger("ir-1", tmp_path)
    ledger.append(_entry("one"))
    with open(ledger.path, "a") as handle:
        handle.write('{"incident_id": "ir-1", "act\n')
    with pytest.raises(LedgerCorrupt, match=r"ledger\.jsonl:2"):
        ledger.entries()
    ledger.append(_entry("three"))
    with pytest.raises(LedgerCorrupt, match=r"ledger\.jsonl:2"):
        ledger.entries()


def test_rejects_incident_ids_that_could_escape_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        Ledger("../etc", tmp_path)
    with pytest.raises(InputError):
        Ledger("ir-1", tmp_path).append(_entry("x").model_copy(update={"incident_id": "ir-2"}))
