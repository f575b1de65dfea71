"""One definition of each fact the responder relies on, and every consumer uses it.

Checked by identity (the consumer's name *is* the one home's object) and, where a second home could
be written without any import, by reading the source with `ast`. `keyresponse/sandbox/` is left out
of the source checks: it is the local stand-in for AWS (seeding accounts, playing attacks), with
clients of its own to the moto server, never the responder's.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def product_sources() -> Iterator[tuple[Path, ast.Module]]:
    for package in ("keyresponse", "tasks", "flows"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "sandbox" not in path.relative_to(ROOT).parts:
                yield path.relative_to(ROOT), ast.parse(path.read_text(encoding="utf-8"))


def calls(tree: ast.AST) -> Iterator[ast.Call]:
    yield from (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def test_one_approval_form() -> None:
    """The response, the hardening and the key scan ask with the same form (approver, decision and
    reason required): no flow defines a form of its own."""
    import flows.assess_readiness
    import flows.preventive_key_scan
    from keyresponse import approval

    assert flows.assess_readiness.approval_form is approval.approval_form
    assert flows.preventive_key_scan.approval_form is approval.approval_form
    assert approval.approval_form([]) is approval.Approval
    forms = [f"{path}:{node.name}" for path, tree in product_sources() for node in ast.walk(tree)
             if isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith("RunInput") for b in node.bases)]
    assert forms == ["keyresponse/approval.py:Approval"]


def test_one_aws_client_factory() -> None:
    """Sessions, client configs and clients are made in keyresponse/aws.py; everything else asks it (directly
    or through an action context, whose `Clients` does)."""
    made_elsewhere = [f"{path}:{node.lineno} {ast.unparse(node.func)}" for path, tree in product_sources()
                      for node in calls(tree) if path.name != "aws.py"
                      and ast.unparse(node.func) in ("boto3.Session", "boto3.client", "boto3.resource", "Config",
                                                     "botocore.session.get_session")]
    assert made_elsewhere == []
    service_clients = sorted({ast.unparse(node.func.value) for path, tree in product_sources() for node in calls(tree)
                              if path.name != "aws.py" and isinstance(node.func, ast.Attribute)
                              and node.func.attr == "client" and node.args
                              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)})
    assert set(service_clients) <= {"aws", "ctx", "here"}, service_clients

    from keyresponse import aws
    from tasks import actions

    assert actions.aws is aws  # Clients (an action context's clients) delegates to aws.client


def test_one_engine_factory() -> None:
    """The investigation's engine comes from `open_engine` wherever one is opened."""
    import tasks.analysis
    from keyresponse import investigation

    assert tasks.analysis.open_engine is investigation.open_engine
    opened = [f"{path}:{node.lineno}" for path, tree in product_sources() for node in calls(tree)
              if ast.unparse(node.func) in ("DuckDBEngine", "AthenaEngine", "AthenaEngine.from_settings")]
    assert len(opened) == 2 and all(at.startswith("keyresponse/investigation.py:") for at in opened), opened
    import keyresponse.engines

    assert not hasattr(keyresponse.engines, "engine_from_settings")
