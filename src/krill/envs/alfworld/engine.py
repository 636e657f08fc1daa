"""TextWorld's PDDL engine (`tw-pddl`), as ALFWorld plays it, with the slow parts cached.

`make_engine()` builds what ALFWorld's `AlfredTWEnv` builds: `PddlEnv` wrapped in `AlfredDemangler`
(entity ids → "apple 1") and `AlfredInfos`, asking for `won`, `admissible_commands` and `facts`.
The game logic is unchanged; only pure work is cached, keyed by its input text:
- `fast_downward.pddl2sas` (grounding the problem, seconds per game) ran twice per load and twice
  per reset (once more for the planner, unused here); here it runs once per problem, kept in memory
  and on disk (`<cache_dir>/alfworld/sas/<sha1 of domain+problem>.sas.z`, zlib, ~50 KB per game).
  The disk holds only the SAS *text*: the parsed task is rebuilt from the PDDL (parse + normalize,
  ~3 ms, the same task pddl2sas returns), so no cache file is ever unpickled — a replaced file can
  at worst be wrong text, which fails the key check or the planner's load, never run code.
- thread safety: TextWorld's text and logic parsers are module-wide objects that garble or crash
  when two threads parse at once (4 threads x 40 parses: 29 exceptions, 7 silently wrong
  results), and the caches here are module-wide too; every parse and every env call holds
  `ENGINE_LOCK` (`krill env serve` runs sessions in threads).
- fast-downward's library keeps the loaded task in globals, so each engine needs its own copy
  (~33 MB); closed engines return theirs to a pool for the next one instead of loading another.
- the TWL2 grammar (`GameLogic`) is parsed once (games differ only in the task sentence), and the text-generation
  grammar's templates/conditions once per string instead of once per admissible command per step.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import textworld
from textworld.envs.pddl import PddlEnv
from textworld.envs.pddl import logic as pddl_logic
from textworld.envs.pddl.textgen import (
    ConditionalSymbol,
    ContextSensitiveGrammar,
    CSGUnknownSymbolError,
    EvalSymbol,
    ListSymbol,
    NonterminalSymbol,
    ProductionRule,
    TerminalSymbol,
)
from textworld.envs.pddl.textgen import _parse_and_convert as _parse_symbols
from textworld.logic import Proposition, Rule, Variable

from krill.io import atomic_write_bytes

_CACHE_FORMAT = 3  # bump when the cached file's shape changes (1 was a pickle, 2 had no checksum: rebuilt)


class _Lru(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


_TRANSLATIONS = _Lru(16)  # a few MB each; the disk cache reloads one in ~0.1 s
_LOGICS = _Lru(8)  # one per domain + generic grammar
_SYMBOLS: dict[str, list] = {}
_QUERIES: dict[str, Rule] = {}
ENGINE_LOCK = threading.RLock()  # TextWorld's parsers and the caches above are not thread-safe
_FREE_LIBRARIES: list[Any] = []  # fast-downward library copies of closed engines, reused
LIBRARIES_LOADED = 0  # copies loaded in this process (each ~33 MB, never unloaded)


def parse_symbols(text: str) -> list:
    """TextWorld's text-grammar parse of `text` (its parser is one module-wide object: locked)."""
    with ENGINE_LOCK:
        return _parse_symbols(text, rule_name="symbols")


def acquire_library() -> Any:
    """A fast-downward library copy for one engine: a closed engine's, else a newly loaded one."""
    global LIBRARIES_LOADED
    import fast_downward

    with ENGINE_LOCK:
        if _FREE_LIBRARIES:
            return _FREE_LIBRARIES.pop()
        LIBRARIES_LOADED += 1
        return fast_downward.load_lib()


def release_library(lib: Any) -> None:
    with ENGINE_LOCK:
        _FREE_LIBRARIES.append(lib)


def translate(domain: str, problem: str, cache_dir: Path | None = None) -> tuple[Any, str]:
    """fast-downward's (task, SAS) for a problem: memory, then disk (SAS text only), then the translator."""
    key = hashlib.sha1((domain + "\0" + problem).encode()).hexdigest()
    if key in _TRANSLATIONS:
        return _TRANSLATIONS[key]
    cache_file = cache_dir / f"{key}.sas.z" if cache_dir is not None else None
    sas = _read_sas(cache_file, key) if cache_file is not None else None
    if sas is not None:
        return _TRANSLATIONS.put(key, (parse_task(domain, problem), sas))
    import fast_downward

    argv = list(sys.argv)  # pddl2sas overwrites sys.argv for its option parser
    try:
        task, sas = fast_downward.pddl2sas(domain, problem)
    finally:
        sys.argv = argv
    if cache_file is not None:
        digest = hashlib.sha1(sas.encode()).hexdigest()
        header = json.dumps({"format": _CACHE_FORMAT, "key": key, "sha1": digest}).encode()
        try:
            atomic_write_bytes(cache_file, zlib.compress(header + b"\n" + sas.encode(), 6))
        except OSError:  # an unwritable cache only costs speed
            pass
    return _TRANSLATIONS.put(key, (task, sas))


def _read_sas(cache_file: Path, key: str) -> str | None:
    """The cached SAS text if the file is ours for this key and its body is intact; None (rebuild) for
    anything else. The checksum matters: fast-downward's native loader aborts the whole process
    (exit 33) on a truncated SAS body, so it must never see one."""
    try:
        header, _, body = zlib.decompress(cache_file.read_bytes()).partition(b"\n")
        meta = json.loads(header)
        if meta.get("format") == _CACHE_FORMAT and meta.get("key") == key:
            if meta.get("sha1") == hashlib.sha1(body).hexdigest():
                return body.decode()
            if cache_file.exists():
                import logging

                logging.getLogger(__name__).warning(
                    "damaged game cache %s: translating the game again", cache_file
                )
    except (OSError, ValueError, zlib.error, AttributeError):  # missing, torn or foreign: rebuilt
        pass
    return None


def parse_task(domain: str, problem: str) -> Any:
    """The PDDL task exactly as `pddl2sas` returns it (parsed, normalised), without the slow grounding."""
    argv = list(sys.argv)
    sys.argv = ["translate.py", "domain", "task"]  # fast_downward's options module parses argv on import
    try:
        from fast_downward.translate import normalize
        from fast_downward.translate.pddl_parser import lisp_parser, parsing_functions
    finally:
        sys.argv = argv
    task = parsing_functions.parse_task(
        lisp_parser.parse_nested_list(domain.split("\n")), lisp_parser.parse_nested_list(problem.split("\n"))
    )
    normalize.normalize(task)
    return task


def _ctx(context: dict) -> dict:
    """textgen's `copy_context`, copying the two dicts but not the entity infos they point to.

    TextWorld deep-copies `variables`/`mapping` although only the dicts are ever updated; the deep
    copies (entity infos, variables) were most of the engine's time per step.
    """
    return {"state": context["state"], "facts": context["facts"], "variables": dict(context["variables"]),
            "mapping": dict(context["mapping"]), "entity_infos": context["entity_infos"]}  # fmt: skip


def _parsed_query(condition: str) -> Rule:
    if condition not in _QUERIES:
        with ENGINE_LOCK:  # TextWorld's logic parser is module-wide too
            _QUERIES[condition] = Rule.parse_conjunctive_query(condition)
    return _QUERIES[condition]


class _Terminal(TerminalSymbol):
    def clone(self):
        return _Terminal(self.symbol)

    def copy(self, context):
        out = self.clone()
        out.context = _ctx(context)
        return out


class _Nonterminal(NonterminalSymbol):
    clone, copy = (lambda self: _Nonterminal(self.symbol)), _Terminal.copy


class _Eval(EvalSymbol):
    clone, copy = (lambda self: _Eval(self.expression)), _Terminal.copy


class _List(ListSymbol):
    clone, copy = (lambda self: _List(self.symbol.clone())), _Terminal.copy


class _Conditional(ConditionalSymbol):
    clone, copy = (lambda self: _Conditional(self.expression.clone(), self.given)), _Terminal.copy

    def derive(self):
        """textgen's ConditionalSymbol.derive + `query`, with the condition parsed once."""
        if len(self.context) == 0:
            raise ValueError("Empty context")
        context = _ctx(self.context)
        contexts = [context]
        if self.given:
            contexts = []
            for mapping in context["state"].all_assignments(_parsed_query(self.given), context["mapping"]):
                sub = _ctx(context)
                sub["variables"].update(
                    {ph.name: sub["entity_infos"][var.name] for ph, var in mapping.items()}
                )
                sub["mapping"].update(mapping)
                contexts.append(sub)
        return [self.expression.copy(c) for c in contexts]


def _fast(symbol):
    """Rebuild a parsed symbol tree with the classes above (same fields, cheaper copies)."""
    if isinstance(symbol, ConditionalSymbol):
        return _Conditional(_fast(symbol.expression), symbol.given)
    if isinstance(symbol, ListSymbol):
        return _List(_fast(symbol.symbol))
    if isinstance(symbol, EvalSymbol):
        return _Eval(symbol.expression)
    if isinstance(symbol, NonterminalSymbol):
        return _Nonterminal(symbol.symbol)
    return _Terminal(symbol.symbol)


class _CachedGrammar(ContextSensitiveGrammar):
    """TextWorld's grammar, same derivations, with parses memoised and light symbol copies."""

    def replace(self, start):
        rules = self._rules.get(str(start))
        if not rules:
            raise CSGUnknownSymbolError(start)

        def applicable(rule) -> bool:
            if not rule.condition:
                return True
            query = _parsed_query(rule.condition)
            return any(True for _ in start.context["state"].all_assignments(query, start.context["mapping"]))

        rhs = next(r for r in rules if applicable(r)).rhs
        return [symbol.copy(start.context) for symbol in rhs]

    def derive(self, start: str, context: dict | None = None) -> str:
        context = context or {}
        if start not in _SYMBOLS:
            _SYMBOLS[start] = [_fast(s) for s in parse_symbols(start)]
        stack = [symbol.copy(context) for symbol in reversed(_SYMBOLS[start])]
        out = []
        while stack:
            symbol = stack.pop()
            if isinstance(symbol, TerminalSymbol):
                out.append(symbol)
            elif isinstance(symbol, NonterminalSymbol):
                stack += self.replace(symbol)[::-1]
            elif isinstance(symbol, ConditionalSymbol | EvalSymbol | ListSymbol):
                stack += symbol.derive()[::-1]
            else:
                raise NotImplementedError(f"Unknown symbol: {type(symbol)}")
        return "".join(map(str, out))


_TASK_RHS = re.compile(r'"rhs": "(Your task is to: (?:[^"\\]|\\.)*)"')


def game_logic(domain: str, grammar: str) -> pddl_logic.GameLogic:
    """TextWorld's GameLogic for a game, parsed once per grammar *without* the task sentence.

    ALFWorld games differ only in the `task` rule ("Your task is to: …"); parsing the TWL2 file
    costs ~1 s, so the rest is parsed once and the task rule is swapped in per game.
    """
    match = _TASK_RHS.search(grammar)
    generic = (
        grammar
        if match is None
        else grammar[: match.start(1)] + "Your task is to: UNKNOWN GOAL." + grammar[match.end(1) :]
    )
    key = hashlib.sha1((domain + "\0" + generic).encode()).hexdigest()
    if key not in _LOGICS:
        logic = pddl_logic.GameLogic(domain=domain, grammar=generic)
        cached = _CachedGrammar()
        for name, rules in logic.grammar._rules.items():
            for rule in rules:
                rule.rhs = [_fast(s) for s in rule.rhs]
            cached._rules[name] = list(rules)
        logic.grammar = cached
        _LOGICS.put(key, logic)
    logic = _LOGICS[key]
    if match is None:
        return logic
    task = json.loads(f'"{match.group(1)}"')
    game = copy.copy(logic)
    game.grammar = _CachedGrammar()
    game.grammar._rules = dict(logic.grammar._rules)
    rhs = [_fast(s) for s in parse_symbols(task)]
    game.grammar._rules["task"] = [ProductionRule(lhs="task", rhs=rhs)]
    return game


class _State(pddl_logic.PddlState):
    """`PddlState.__init__` from a cached translation, without the planner's second translation."""

    def __init__(self, downward_lib, pddl_problem: str, logic, translation):  # noqa: D107
        from collections import Counter, defaultdict

        import fast_downward

        self._facts = defaultdict(set)
        self._vars_by_name = {}
        self._vars_by_type = defaultdict(set)
        self._var_counts = Counter()
        self._logic = logic
        self.downward_lib = downward_lib
        self.pddl_problem = pddl_problem
        self.task, self.sas = translation
        self._actions = {a.name: a for a in self.task.actions}
        for type_ in self.task.types:
            try:
                self._logic.types.add(textworld.logic.Type(type_.name, type_.supertype_names))
            except ValueError:
                pass
        self.downward_lib.load_sas(self.sas.encode("utf-8"))
        self.name2type = {o.name: o.type_name for o in self.task.objects}
        facts = []
        for atom in self.task.init:
            if isinstance(atom, fast_downward.translate.pddl.conditions.Atom) and atom.predicate != "=":
                facts.append(Proposition(atom.predicate, [Variable(a, self.name2type[a]) for a in atom.args]))
        self.add_facts(facts)
        atoms = (pddl_logic.Atom * self.downward_lib.get_state_size())()
        self.downward_lib.get_state(atoms)
        self.add_facts([f for f in (a.get_fact(self.name2type) for a in atoms) if not f.is_negation])

    def replan(self, infos):  # the planner's SAS is not loaded: fail loudly, not silently
        raise NotImplementedError("krill's engine does not load fast-downward's planner; use the expert")


class CachedPddlEnv(PddlEnv):
    """`PddlEnv` whose load/reset reuse cached logic and translation (step and infos unchanged)."""

    def __init__(self, infos, cache_dir: Path | None = None):
        textworld.core.Environment.__init__(self, infos)  # PddlEnv's would load a library copy
        self.downward_lib = acquire_library()
        self.cache_dir = cache_dir

    def close(self) -> None:  # noqa: D102 - hand the library copy to the next engine
        lib, self.downward_lib = getattr(self, "downward_lib", None), None
        if lib is not None:
            release_library(lib)

    def load(self, filename: str) -> None:  # noqa: D102
        with ENGINE_LOCK:
            self._load(filename)

    def _load(self, filename: str) -> None:
        from krill.io import read_json

        if self.downward_lib is None:  # closed earlier, loaded again
            self.downward_lib = acquire_library()
        path = Path(filename)
        data = read_json(path)
        self._game_file = str(path)
        self._game_data = data
        self.walkthrough = data.get("walkthrough")
        self._logic = game_logic(data["pddl_domain"], data["grammar"])
        self._translation = translate(data["pddl_domain"], data["pddl_problem"], self.cache_dir)
        self._pddl_state = self._new_state()
        self._entity_infos = self._get_entity_infos()

    def _new_state(self) -> _State:
        return _State(self.downward_lib, self._game_data["pddl_problem"], self._logic, self._translation)

    def step(self, command: str):  # noqa: D102
        with ENGINE_LOCK:
            return super().step(command)

    def reset(self):  # noqa: D102
        with ENGINE_LOCK:
            return self._reset()

    def _reset(self):  # PddlEnv.reset with a cached state build
        from textworld.core import GameState

        self._pddl_state = self._new_state()
        self.prev_state = None
        self.state = GameState()
        self._last_action = None
        self._moves = 0
        context = {"state": self._pddl_state, "facts": list(self._pddl_state.facts), "variables": {},
                   "mapping": {}, "entity_infos": self._entity_infos}  # fmt: skip
        self.state.feedback = self._logic.grammar.derive("#intro#", context)
        self.state.raw = self.state.feedback
        self._gather_infos()
        return self.state


def make_engine(cache_dir: str | Path | None = None) -> textworld.core.Environment:
    """ALFWorld's wrapper stack around the cached PDDL env (as `AlfredTWEnv.init_env` builds it).

    `cache_dir`: where translations are kept between processes (None: memory only).
    """
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=True, extras=["gamefile"])
    return AlfredInfos(
        AlfredDemangler(CachedPddlEnv(infos, Path(cache_dir) if cache_dir else None), shuffle=False)
    )
