"""The import graph points one way: library → tasks → flows, with the programs on top, and no cycle.

| layer | modules | may import |
|---|---|---|
| programs | `keyresponse.cli` (the CLI, `serve`, `serve-webhook`) and `python -m keyresponse` | everything below |
| flows | `flows` | tasks, library |
| tasks | `tasks` (the action contract, the actions, their registries, the Prefect tasks) | library |
| library | the rest of `keyresponse` | library |

Every import counts, also one inside a function (a lazy import is still a dependency); only the
imports under `if TYPE_CHECKING:` do not, since they never run. The graph is built with `ast` from
the source files, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keyresponse", "tasks", "flows")
#: The programs: entry points that start flows and use the tasks, above every other layer.
PROGRAMS = ("keyresponse.cli", "keyresponse.__main__")
#: Who may import whom, by layer.
ALLOWED = {"programs": {"programs", "flows", "tasks", "library"}, "flows": {"flows", "tasks", "library"},
           "tasks": {"tasks", "library"}, "library": {"library"}}


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except what sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph(root: Path) -> dict[str, set[str]]:
    """module → the modules of ours it imports (a `from a.b import c` counts `a.b`, and `a.b.c` if a module)."""
    known = modules(root)

    def ours(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                wanted = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name].update(m for m in map(ours, wanted) if m and m != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def layer(module: str) -> str:
    if any(module == p or module.startswith(p + ".") for p in PROGRAMS):
        return "programs"
    top = module.split(".")[0]
    return {"flows": "flows", "tasks": "tasks"}.get(top, "library")


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{src} ({layer(src)}) imports {dst} ({layer(dst)})"
                  for src, targets in graph.items() for dst in targets if layer(dst) not in ALLOWED[layer(src)])


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph(ROOT)
    assert len(graph) > 100, "the graph misses the project's modules"
    assert cycles(graph) == []


def test_every_import_points_down_a_layer() -> None:
    assert upward(import_graph(ROOT)) == []


def test_the_action_contract_never_imports_an_action() -> None:
    graph = import_graph(ROOT)
    registries = ("tasks.containment", "tasks.eradication", "tasks.recovery", "tasks.hardening", "tasks.registry")
    assert sorted(m for m in graph["tasks.actions"] if m.startswith(registries)) == []
    assert "tasks.actions" in graph["tasks.containment.deactivate_access_key"]


def test_the_checks_catch_a_cycle_an_upward_import_and_see_lazy_ones(tmp_path: Path) -> None:
    """The checker itself: a planted cycle through a function-level import, and a library module that
    imports a flow, are both found; an import under TYPE_CHECKING is not a dependency."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "keyresponse" / "a.py").write_text("from keyresponse import b\n")
    (tmp_path / "keyresponse" / "b.py").write_text("def f():\n    from keyresponse.a import x\n")
    (tmp_path / "keyresponse" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from flows import typed\nimport flows.run\n")
    (tmp_path / "flows" / "run.py").write_text("from keyresponse import c\n")
    (tmp_path / "flows" / "typed.py").write_text("")
    graph = import_graph(tmp_path)
    assert graph["keyresponse.c"] == {"flows.run"}
    assert sorted(cycles(graph)) == [["flows.run", "keyresponse.c"], ["keyresponse.a", "keyresponse.b"]]
    assert upward(graph) == ["keyresponse.c (library) imports flows.run (flows)"]


#: A module over this many lines says why at the top of its docstring ("Size: …").
MAX_LINES = 400


def test_a_module_over_400_lines_says_why() -> None:
    unexplained = []
    for name, path in modules(ROOT).items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Size:" not in doc and "Over 400 lines" not in doc:
                unexplained.append(f"{name} ({text.count(chr(10))} lines)")
    assert unexplained == [], "split by job, or say why at the top (Size: …)"
