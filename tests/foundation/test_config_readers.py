"""Every config key lives where its readers are, and says what it governs (issue 32).

The test reads every module of `src/krill` (its AST) and finds each key's readers: attribute chains
through a section (`cfg.rl.kl_coef`, `self.cfg.agent.think`), names bound to a section (`rl = cfg.rl`,
`self.cfg = rcfg`) and parameters annotated with a section's class (`rl: RlConfig`). Then:
- no key is dead (every one has a reader);
- a section's keys are read only in the layers that section configures (`SCOPE`): `rl.max_prompt_length`,
  read by every phase's prompt builder in `agent/`, failed this and moved to `agent.max_prompt_length`;
- every key a description names (`eval.temperature`, ...) exists, or is an old spelling still read.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pydantic import BaseModel

import krill
from krill.config_keys import explain
from krill.config_renames import RENAMED
from krill.config_schema import EndpointConfig, KrillConfig

SRC = Path(krill.__file__).parent
# the modules that define, load and explain config (their mentions of keys are not readers)
NOT_READERS = {"config.py", "config_keys.py", "config_load.py", "config_renames.py"}

# section → the packages (or modules) it configures; "*" = read everywhere (the policy, the env)
SCOPE: dict[str, set[str]] = {
    "model": {"*"},
    "env": {"*"},
    "agent": {"agent", "models", "train", "evaluate", "cli"},
    "skill_retrieval": {"skills", "evaluate"},
    "distill": {"skills", "evaluate", "cli"},
    "lora": {"train"},
    "sft": {"train", "cli"},
    "rl": {"train", "skills/curriculum.py"},  # the curriculum's schedule spans rl.iterations
    "evolution": {"train", "skills"},
    "skills": {"train", "skills"},
    "eval": {"evaluate", "train", "cli"},
    "train": {"train"},
    "ablate": {"train"},
}


def _config_tree(node: type[BaseModel] = KrillConfig, prefix: tuple[str, ...] = ()):
    sections: dict[tuple[str, ...], type[BaseModel]] = {}
    leaves: set[tuple[str, ...]] = set()
    for name, field in node.model_fields.items():
        path, sub = (*prefix, name), field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            sections[path] = sub
            more, deeper = _config_tree(sub, path)
            sections.update(more)
            leaves |= deeper
        else:
            leaves.add(path)
    return sections, leaves


SECTIONS, LEAVES = _config_tree()
TOP = {p[0] for p in SECTIONS}
ROLES = [p for p, cls in SECTIONS.items() if issubclass(cls, EndpointConfig)]
CLASS_PATHS = {cls.__name__: [p] for p, cls in SECTIONS.items() if not issubclass(cls, EndpointConfig)}
CLASS_PATHS |= {cls.__name__: [p] for p, cls in SECTIONS.items() if issubclass(cls, EndpointConfig)}
CLASS_PATHS["EndpointConfig"] = ROLES  # a reader of any endpoint reads every role's field


def _names(node: ast.AST) -> list[str]:
    out: list[str] = []
    while isinstance(node, ast.Attribute):
        out.append(node.attr)
        node = node.value
    out.append(node.id if isinstance(node, ast.Name) else "?")
    return out[::-1]


def _walk(paths: list[tuple[str, ...]], rest: list[str]) -> list[tuple[str, ...]]:
    """Follow attribute names from section paths: the leaves (or deepest sections) they reach."""
    out = []
    for path in paths:
        for name in rest:
            nxt = (*path, name)
            if nxt not in SECTIONS and nxt not in LEAVES:
                break
            path = nxt
        out.append(path)
    return out


def _resolve(names: list[str], bound: dict[str, list[tuple[str, ...]]]) -> list[tuple[str, ...]]:
    for i in range(len(names), 0, -1):  # a bound name (`rl`, `self.cfg`) first, longest first
        paths = bound.get(".".join(names[:i]))
        found = [p for p in _walk(paths or [], names[i:]) if p in LEAVES or i == len(names)]
        if found:
            return found
    for i, name in enumerate(names[1:], 1):  # else a chain through a top-level section: cfg.rl.kl_coef
        if name in TOP:
            return [p for p in _walk([()], names[i:]) if p in LEAVES or p in SECTIONS]
    if len(names) == 2 and "cfg" in names[0] and (names[1],) in LEAVES:  # a top-level key: cfg.seed
        return [(names[1],)]
    return []


def _annotation_paths(ann: ast.AST | None) -> list[tuple[str, ...]]:
    if isinstance(ann, ast.BinOp):  # RetrievalConfig | None
        return _annotation_paths(ann.left) + _annotation_paths(ann.right)
    name = ann.id if isinstance(ann, ast.Name) else ann.value if isinstance(ann, ast.Constant) else None
    return CLASS_PATHS.get(name, []) if isinstance(name, str) else []


def _params(func: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, list[tuple[str, ...]]]:
    args = func.args.args + func.args.kwonlyargs
    return {a.arg: paths for a in args if (paths := _annotation_paths(a.annotation))}


def _bound_by(node: ast.Assign, bound: dict[str, list[tuple[str, ...]]]) -> dict[str, list[tuple[str, ...]]]:
    """`rl = cfg.rl`, `self.cfg = rcfg or RetrievalConfig()`: the names this assignment binds to sections."""
    pairs = [(t, node.value) for t in node.targets]
    if isinstance(node.value, ast.Tuple):  # cfg, rl = self.cfg, self.cfg.rl
        pairs = [
            p
            for t in node.targets
            if isinstance(t, ast.Tuple)
            for p in zip(t.elts, node.value.elts, strict=False)
        ]
    out = {}
    for target, value in pairs:
        value = value.values[0] if isinstance(value, ast.BoolOp) else value
        if isinstance(value, ast.Attribute | ast.Name) and isinstance(target, ast.Name | ast.Attribute):
            if paths := [p for p in _resolve(_names(value), bound) if p in SECTIONS]:
                out[".".join(_names(target))] = paths
    return out


def _module_reads(tree: ast.Module) -> set[tuple[str, ...]]:
    reads: set[tuple[str, ...]] = set()

    def visit(node: ast.AST, bound: dict[str, list[tuple[str, ...]]]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            bound = {**bound, **_params(node)}
        elif isinstance(node, ast.Assign):
            bound.update(_bound_by(node, bound))
        elif isinstance(node, ast.Attribute):
            reads.update(p for p in _resolve(_names(node), bound) if p in LEAVES)
        for child in ast.iter_child_nodes(node):
            visit(child, bound)

    visit(tree, _self_attributes(tree))
    return reads


def _self_attributes(tree: ast.Module) -> dict[str, list[tuple[str, ...]]]:
    """`self.cfg` bound in any method of the module (a base class's __init__ included): every method reads it."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        for a in (n for n in ast.walk(func) if isinstance(n, ast.Assign)):
            for name, paths in _bound_by(a, _params(func)).items():
                if name.startswith("self."):
                    out[name] = sorted(set(out.get(name, [])) | set(paths))
    return out


def _readers() -> dict[tuple[str, ...], set[str]]:
    found: dict[tuple[str, ...], set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in NOT_READERS:
            continue
        for key in _module_reads(ast.parse(path.read_text("utf-8"))):
            found.setdefault(key, set()).add(rel)
    return found


READERS = _readers()


def _in_scope(module: str, section: str) -> bool:
    scope = SCOPE[section] | {"config_schema.py"}  # the schema's own views (`KrillConfig.sampling`)
    return "*" in scope or module in scope or module.split("/")[0] in scope


def test_the_reader_finder_sees_the_known_readers():
    """The checks below are only as good as this: it must find readers through each idiom."""
    assert "agent/prompts.py" in READERS[("agent", "max_prompt_length")]  # cfg.agent.x
    assert "train/samples.py" in READERS[("rl", "gamma")]  # rl: RlConfig
    assert "skills/retrieval.py" in READERS[("skill_retrieval", "max_general")]  # self.cfg = rcfg or ...
    assert "models/openai_api.py" in READERS[("model", "teacher", "max_tokens")]  # cfg: EndpointConfig
    assert "config_schema.py" in READERS[("model", "policy", "max_new_tokens")]  # policy = self.model.policy


def test_every_config_key_is_read_somewhere():
    dead = sorted(".".join(k) for k in LEAVES if k != ("preset",) and not READERS.get(k))
    assert not dead, f"keys nothing reads: {dead}"


def test_a_sections_keys_are_read_only_where_that_section_says():
    stray = sorted(
        f"{'.'.join(key)} read by {module}"
        for key, modules in READERS.items()
        if len(key) > 1
        for module in modules
        if not _in_scope(module, key[0])
    )
    assert not stray, "a key read outside its section's layer belongs elsewhere:\n" + "\n".join(stray)


def test_keys_named_in_descriptions_exist():
    known = {".".join(k) for k in LEAVES} | {".".join(k) for k in SECTIONS} | set(RENAMED)
    # `section.key` as a description writes it; not a module path (`krill.skills.retrieval`)
    dotted = re.compile(r"(?<![\w.])(?:" + "|".join(sorted(TOP)) + r")\.[a-z_]+(?:\.[a-z_]+)*")
    stale = sorted(
        f"{key}: names {name}"
        for key, _default, text in explain()
        for name in dotted.findall(text)
        if name not in known
    )
    assert not stale, stale
