"""Dependencies point one way (docs/architecture.md): cli → train/evaluate → agent/skills → models/envs →
the base modules (schema, config, io, formats, …). This test reads every import in src/krill (lazy
ones inside functions too) and fails on an upward import or an import cycle, so the rule holds by itself."""

from __future__ import annotations

import ast
from pathlib import Path

import krill

ROOT = Path(krill.__file__).parent
LAYERS = {
    "__main__": 5,
    "cli": 4,
    "train": 3,
    "evaluate": 3,
    "agent": 2,
    "skills": 2,
    "models": 1,
    "envs": 1,
}  # the rest: 0
KNOWN_CYCLES: set[frozenset[str]] = set()  # none left


def _module(path: Path) -> str:
    name = ".".join(("krill", *path.relative_to(ROOT).with_suffix("").parts))
    return name.removesuffix(".__init__")


def _imports() -> dict[str, set[str]]:
    """module → the krill modules it imports (`from pkg import mod` counts as importing `pkg.mod`)."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name.startswith("krill.testing"):  # test helpers for the test suite, not a layer
            continue
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                targets |= subs or {node.module}
        graph[name] = {t for t in targets if t.startswith("krill.") and not t.startswith("krill.testing")}
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def test_no_module_imports_a_higher_layer():
    upward = sorted((m, t) for m, ts in _imports().items() for t in ts if _layer(t) > _layer(m))
    assert upward == [], f"upward imports (see docs/architecture.md): {upward}"


def test_no_import_cycles():
    graph = _imports()
    cycles = []
    for start in graph:  # a cycle through `start`: depth-first back to it
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start and frozenset(path) not in KNOWN_CYCLES:
                    cycles.append(path)
                elif nxt not in seen and nxt in graph:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert cycles == [], f"import cycles: {sorted({' → '.join(sorted(c)) for c in cycles})}"


def test_the_checker_sees_lazy_and_from_imports(tmp_path):
    graph = _imports()
    assert "krill.agent.prompts" in graph["krill.train.rl"]  # a top-level import
    assert "krill.train.rl" in graph["krill.cli.rl"]  # an import inside a function
    assert "krill.envs.webshop.pages" in graph["krill.envs.webshop.env"]  # `from pkg import module`
