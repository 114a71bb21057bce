"""The package's shape, checked: no import cycle, and one list of step and probe kinds.

Imports are read from the source (ast), including imports inside functions: a
cycle that only closes at run time is still a cycle for a reader.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "orchestrator"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """module -> the package modules it imports (a package import counts as its __init__)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_a_module_that_imports_it():
    cycle = _cycle(_imports())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_probes_never_import_steps():
    graph = _imports()
    offenders = {m: sorted(t for t in targets if t.startswith("orchestrator.steps"))
                 for m, targets in graph.items() if m.startswith("orchestrator.probes")}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_registered_kinds_are_the_schemas_kinds():
    from orchestrator.probes import PROBES
    from orchestrator.steps import STEPS

    schema = json.loads((REPO / "schemas" / "plan.schema.json").read_text())
    defs = schema["$defs"]
    step_kinds = set(defs["step"]["properties"]) - {"id"}
    assert set(STEPS) == step_kinds
    assert set(PROBES) == set(defs["probe"]["properties"])
    for kind in step_kinds | set(PROBES):
        ref = (defs["step"]["properties"].get(kind) or defs["probe"]["properties"][kind])["$ref"]
        assert ref == ("#/$defs/probe" if kind == "check" else f"#/$defs/{kind}")
        assert ref.rsplit("/", 1)[1] in defs
