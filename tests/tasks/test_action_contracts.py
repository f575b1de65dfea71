"""The contract every registered action keeps, checked over the whole registry against moto."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from keyresponse.errors import KeyResponseError
from tasks.actions import Action, Clients
from tasks.iam_policy import PERMISSION_RE
from tasks.registry import phases, registry

from .conftest import MakeCtx, build_case

ACTIONS = list(registry().values())
READ_ONLY = re.compile(r"^(List|Get|Describe)[A-Z]")


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_declares_the_contract_when_registered(action: Action) -> None:
    module = inspect.getmodule(action)
    assert module is not None and module.__doc__, f"{action.name}: module needs a docstring"
    assert action.name == Path(str(module.__file__)).stem
    assert action.summary and action.summary.endswith(".")
    assert action.permissions and all(PERMISSION_RE.fullmatch(p) for p in action.permissions), action.permissions
    assert len(set(action.permissions)) == len(action.permissions)
    assert action.target_kinds
    has_undo = type(action).revert is not Action.revert
    assert has_undo != (action.undo_unsupported_reason is not None), "undo xor undo_unsupported_reason"


def test_registers_every_module_of_each_phase_package() -> None:
    for phase, actions in phases().items():
        package = importlib.import_module(f"tasks.{phase}")
        folder = Path(str(package.__file__)).parent
        stems = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
        assert stems == {a.name for a in actions}, phase
    assert all(a.requires_approval for a in phases()["eradication"])


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_keeps_the_contract_when_run_against_moto(
    action: Action, make_ctx: MakeCtx, unique_name: str, write_calls: Callable[[Clients], list[str]]
) -> None:
    ctx = make_ctx()
    target = build_case(action.name, unique_name, ctx)
    calls = write_calls(ctx.clients)

    change = action.plan(ctx, target)
    assert change is not None and change.before and change.description
    assert calls and all(READ_ONLY.match(op) for op in calls), f"plan made a write call: {calls}"

    first = action.apply(ctx, target)
    assert first is not None and first.before == change.before and first.after != first.before
    action.verify(ctx, target)
    assert action.apply(ctx, target) is None, "a second apply must find nothing to do"
    action.verify(ctx, target)
    assert [e.entry_id for e in ctx.ledger.applied()] == [first.entry_id]

    if action.undo_unsupported_reason is None:
        undone = action.undo(ctx, first)
        assert action.read(ctx, target) == first.before
        assert undone.undoes == first.entry_id
        assert ctx.ledger.to_undo() == []
    else:
        with pytest.raises(KeyResponseError, match="cannot be undone"):
            action.undo(ctx, first)


def test_refuses_apply_when_context_is_dry_run(make_ctx: MakeCtx, unique_name: str) -> None:
    from keyresponse.errors import GuardrailRefusal

    ctx = make_ctx(dry_run=True)
    target = build_case("deactivate_access_key", unique_name, ctx)
    with pytest.raises(GuardrailRefusal, match="dry run"):
        registry()["deactivate_access_key"].apply(ctx, target)
    assert registry()["deactivate_access_key"].read(ctx, target) == {"status": "Active"}
