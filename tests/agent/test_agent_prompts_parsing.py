"""Prompt assembly (sections, no-skills, history window, length cap, prefix order) and action parsing."""

from __future__ import annotations

from krill.agent.parsing import parse_action
from krill.agent.prompts import (
    GENERAL_HEADER,
    MISTAKES_HEADER,
    REMINDER_BARE,
    SKILLS_HEADER,
    PromptState,
    build_messages,
    cap_admissible,
)
from krill.config import KrillConfig
from krill.schema import CommonMistake, Skill
from krill.skills.retrieval import Retrieved


def retrieved():
    g = Skill(name="Check inventory", principle="Know what you hold", when_to_apply="before placing")
    h = Skill(
        name="Use the microwave",
        principle="Heat with microwave 1",
        when_to_apply="heat tasks",
        category="Heat",
    )
    m = CommonMistake(description="Putting the object before heating it", how_to_avoid="heat first")
    return Retrieved(general=[g], specific=[(h, 0.71)], mistakes=[m], category="Heat")


def state(n_hist=5, **kw):
    hist = [(f"obs number {i}", f"go to place {i}") for i in range(n_hist)]
    base = dict(task="heat some egg and put it in fridge", observation="You arrive at fridge 1.",
                admissible=["go to fridge 1", "look", "open fridge 1"], history=hist, step=n_hist,
                initial_observation="You are in the kitchen.")  # fmt: skip
    return PromptState(**{**base, **kw})


def cfg(**agent):
    return KrillConfig().override({f"agent.{k}": v for k, v in agent.items()})


def test_sections_present_in_order_and_fixed_part_first():
    msgs = build_messages(state(), cfg(history_window=2), retrieved())
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    order = [SKILLS_HEADER, GENERAL_HEADER, "### Heat Skills", MISTAKES_HEADER, "## Task", "## Initial Observation",
             "## Recent History", "## Current Observation (step 6)", "## Admissible Actions"]  # fmt: skip
    positions = [user.index(h) for h in order]
    assert positions == sorted(positions)
    assert "Use the microwave" in user and "heat first" in user and "- open fridge 1" in user
    assert "<action>" not in msgs[0]["content"]  # bare-action format by default (agent.think False)
    # prefix-cache friendly: two consecutive steps share everything up to the history
    nxt = build_messages(state(n_hist=6, observation="Nothing happens."), cfg(history_window=2), retrieved())
    cut = user.index("## Recent History")
    assert nxt[1]["content"][:cut] == user[:cut] and nxt[0] == msgs[0]


def test_think_mode_and_no_skills_mode():
    msgs = build_messages(state(), cfg(think=True), retrieved())
    assert "<think>" in msgs[0]["content"] and "<action>" in msgs[0]["content"]
    # agent.use_skills: false is decided once (make_retriever gives no retriever), so no phase's
    # prompt carries skills, however it builds its prompt
    from krill.agent.prompts import make_retriever, shows_skills
    from krill.schema import SkillBank

    off = cfg(use_skills=False, context="conversation")
    bank = SkillBank(general_skills=retrieved().general)
    assert make_retriever(bank, off) is None and not shows_skills(off, bank)
    assert not shows_skills(cfg(), bank, wanted=False) and not shows_skills(cfg(), None)
    assert shows_skills(cfg(), None, retriever=object())  # the raw-trajectory memory
    plain = build_messages(state(), off, None)[1]["content"]
    assert SKILLS_HEADER not in plain and "Use the microwave" not in plain and "## Task" in plain


def test_history_window_and_admissible_cap():
    user = build_messages(state(n_hist=5), cfg(history_window=2, max_admissible=2), None)[1]["content"]
    assert "obs number 3" in user and "obs number 4" in user and "obs number 2" not in user
    assert "[Step 4]" in user and "[Step 5]" in user
    assert "- open fridge 1" not in user and "(... 1 more)" in user
    none = build_messages(state(n_hist=5), cfg(history_window=0), None)[1]["content"]
    assert "## Recent History" not in none
    assert "## Earlier Actions" not in user  # agent.action_memory is off by default


def test_action_memory_lists_the_actions_before_the_window():
    user = build_messages(state(n_hist=5), cfg(history_window=2, action_memory=True), None)[1]["content"]
    assert "## Earlier Actions (steps 1-3)\ngo to place 0; go to place 1; go to place 2\n" in user
    assert "obs number 2" not in user  # actions only: the observations stay out
    assert user.index("## Earlier Actions") < user.index("## Recent History")
    short = build_messages(state(n_hist=2), cfg(history_window=2, action_memory=True), None)[1]["content"]
    assert "## Earlier Actions" not in short  # nothing older than the window yet


def test_restate_task_repeats_the_task_in_the_last_line():
    last = build_messages(state(), cfg(restate_task=True), None)[1]["content"].splitlines()[-1]
    assert last == "Your task is to: heat some egg and put it in fridge. " + REMINDER_BARE
    plain = build_messages(state(), cfg(), None)[1]["content"].splitlines()[-1]
    assert plain == REMINDER_BARE


def test_admissible_cap_cuts_the_most_common_kind_not_the_actions_at_hand():
    # ALFWorld order: alphabetical, so 'take' comes after thirty 'go to's
    goes = [f"go to cabinet {i}" for i in range(1, 31)]
    actions = ["examine countertop 1", *goes, "inventory", "look", "take apple 1 from countertop 1"]
    assert cap_admissible(actions, 40) == actions  # under the cap: untouched
    shown = cap_admissible(actions, 10)
    assert shown == ["examine countertop 1", *goes[:6], "inventory", "look", "take apple 1 from countertop 1"]
    user = build_messages(state(admissible=actions), cfg(max_admissible=10), None)[1]["content"]
    assert "- take apple 1 from countertop 1" in user and "- go to cabinet 7" not in user
    assert "(... 24 more)" in user


def test_prompt_capped_by_dropping_oldest_history_first():
    c = cfg(history_window=5)
    words = lambda text: len(text.split())  # noqa: E731 - a countable token counter
    full = build_messages(state(n_hist=5), c, retrieved(), count_tokens=words)
    full_len = sum(words(m["content"]) for m in full)
    c = c.override(
        {"agent.max_prompt_length": full_len - 1}
    )  # one token too many: drop exactly the oldest entry
    capped = build_messages(state(n_hist=5), c, retrieved(), count_tokens=words)[1]["content"]
    assert "obs number 0" not in capped and "obs number 1" in capped and "Use the microwave" in capped
    c = c.override({"agent.max_prompt_length": 32})  # far too small: all history goes, the rest stays
    tiny = build_messages(state(n_hist=5), c, retrieved(), count_tokens=words)[1]["content"]
    assert "## Recent History" not in tiny and "## Current Observation" in tiny


def test_parse_think_and_action():
    p = parse_action(
        "<think>The egg must be hot.</think>\n<action>Go To Microwave 1</action>", ["go to microwave 1"], True
    )
    assert (p.action, p.think, p.valid) == ("go to microwave 1", "The egg must be hot.", True)
    unclosed = parse_action("<action>look", ["look"])  # generation stopped at the stop string
    assert unclosed.valid and unclosed.action == "look"


def test_parse_bare_lines_case_and_punctuation():
    adm = ["go to countertop 1", "take egg 1 from countertop 1"]
    assert (
        parse_action("\n  Action: 'Take Egg 1 from countertop 1.'\nbecause", adm).action
        == "take egg 1 from countertop 1"
    )
    assert parse_action("> go to  countertop 1", adm).valid
    assert parse_action("1. go to countertop 1", adm).valid


def test_parse_invalid_outputs():
    adm = ["go to fridge 1"]
    bad = parse_action("I want to fly to the moon", adm)
    assert not bad.valid and bad.action == "I want to fly to the moon" and "admissible" in bad.reason
    empty = parse_action("   \n ", adm)
    assert not empty.valid and "no action" in empty.reason
    missing_think = parse_action("<action>go to fridge 1</action>", adm, think_required=True)
    assert not missing_think.valid and "think" in missing_think.reason


def test_parse_webshop_search_template_and_clicks():
    adm = ["search[...]", "click[Buy Now]", "click[< Prev]"]
    s = parse_action("<action>search[Red Cotton T-Shirt large]</action>", adm)
    assert s.valid and s.action == "search[Red Cotton T-Shirt large]"
    assert parse_action("click[buy now]", adm).action == "click[Buy Now]"
    assert not parse_action("search[]", adm).valid
    assert not parse_action("search[shoes]", ["click[Buy Now]"]).valid  # no search box on this page


def test_parse_sentence_naming_one_admissible_action():
    adm = ["go to cabinet 1", "go to cabinet 10", "take apple 1 from cabinet 1"]
    p = parse_action("The best next action is to go to cabinet 10.", adm)
    assert p.valid and p.action == "go to cabinet 10"
    assert (
        parse_action("I should take apple 1 from cabinet 1 first", adm).action
        == "take apple 1 from cabinet 1"
    )
    ambiguous = parse_action("go to cabinet 1 or go to cabinet 10", adm)
    assert not ambiguous.valid and ambiguous.action == "go to cabinet 1 or go to cabinet 10"
    assert not parse_action("go to cabinet 100", adm).valid  # word boundaries: no partial numbers
