"""Model text → action (verl-agent's "projection"): extract, normalise, match to the admissible set.

Accepted shapes: `<think>…</think><action>…</action>`, `<action>…</action>` (also unclosed, since a
policy may stop generating at the `</action>` stop string), or a bare action line (first non-empty
line, with "Action:", quotes, list markers and trailing punctuation stripped). Matching is
case- and whitespace-insensitive and returns the env's own spelling. Anything else is an invalid
action: it is still sent to the env as-is, which answers "Nothing happens.".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL | re.IGNORECASE)
ACTION_RE = re.compile(r"<action>(.*?)(?:</action>|$)", re.DOTALL | re.IGNORECASE)
PREFIX_RE = re.compile(r"^(?:>\s*|[-*•]\s+|\d+[.)]\s+|(?:next\s+)?action\s*:\s*)+", re.IGNORECASE)
TEMPLATE_SUFFIX = "[...]"  # WebShop lists `search[...]` when the page admits a free-text search


@dataclass
class ParsedAction:
    """The action to send, the reasoning (if any), whether it is valid, and why not."""

    action: str
    think: str | None = None
    valid: bool = True
    reason: str = ""


def parse_action(text: str, admissible: Sequence[str] | None, think_required: bool = False) -> ParsedAction:
    """Parse one response into an action and match it to `admissible`.

    >>> parse_action("<think>it is cold</think><action>Open Fridge 1</action>", ["open fridge 1"])
    ParsedAction(action='open fridge 1', think='it is cold', valid=True, reason='')
    >>> parse_action("Action: go to sinkbasin 1.", ["go to sinkbasin 1"]).action
    'go to sinkbasin 1'
    >>> parse_action("search[red shirt]", ["search[...]"]).valid
    True
    """
    text = text or ""
    think_m = THINK_RE.search(text)
    think = think_m.group(1).strip() if think_m else None
    action_m = ACTION_RE.search(text)
    if action_m:
        candidate = _clean(action_m.group(1))
    else:
        rest = THINK_RE.sub("", text) if think_m else text
        candidate = _clean(_first_line(rest))
    if not candidate:
        return ParsedAction("", think, False, "no action found in the response")
    matched = match_admissible(candidate, admissible)
    if matched is None:
        matched = mentioned_action(candidate, admissible)
    if matched is None:
        return ParsedAction(candidate, think, False, "not an admissible action")
    if think_required and not think:
        return ParsedAction(matched, think, False, "missing <think>…</think>")
    return ParsedAction(matched, think, True, "")


def match_admissible(candidate: str, admissible: Sequence[str] | None) -> str | None:
    """The admissible action `candidate` names (env spelling), or None. No list = anything goes."""
    if not admissible:
        return candidate
    key = _norm(candidate)
    for a in admissible:
        if a.endswith(TEMPLATE_SUFFIX):
            filled = _fill_template(candidate, a[: -len(TEMPLATE_SUFFIX)])
            if filled is not None:
                return filled
        elif _norm(a) == key:
            return a
    return None


def mentioned_action(text: str, admissible: Sequence[str] | None) -> str | None:
    """The one admissible action a sentence names, e.g. 'The best next action is to go to cabinet 1.'

    Small models answer in prose; a sentence naming exactly one admissible action (ignoring ones
    contained in a longer match) is that action. Naming two different ones is ambiguous → None.

    >>> mentioned_action("I will go to cabinet 10 now", ["go to cabinet 1", "go to cabinet 10"])
    'go to cabinet 10'
    """
    if not admissible:
        return None
    low = _norm(text)
    hits = [a for a in admissible if not a.endswith(TEMPLATE_SUFFIX) and _mentions(low, _norm(a))]
    hits = [a for a in hits if not any(a != b and _mentions(_norm(b), _norm(a)) for b in hits)]
    return hits[0] if len(hits) == 1 else None


def _mentions(text: str, action: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(action)}(?![\w])", text) is not None


def _fill_template(candidate: str, head: str) -> str | None:
    """`search[Red Shirt]` against template head `search` → 'search[Red Shirt]' (argument kept as typed)."""
    c = candidate.strip()
    if not (c.lower().startswith(head.lower() + "[") and c.endswith("]")):
        return None
    arg = c[len(head) + 1 : -1].strip()
    return f"{head}[{arg}]" if arg else None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def _clean(text: str) -> str:
    s = " ".join(text.split())
    s = PREFIX_RE.sub("", s).strip()
    s = s.strip("`\"'").strip()
    # Trailing sentence punctuation is never part of an ALFWorld/WebShop action ("]" is kept).
    return s.rstrip(".!?;,").strip()


def _norm(s: str) -> str:
    return " ".join(s.lower().split())
