"""The original krill walkthrough, typed verbatim in an empty directory (issue 11).

The seven commands run as subprocesses of the installed `krill`, in order, with `KRILL_PRESET=tiny`
and the default embedder (the embedded MiniLM). The last one reads a `config.demo.json` in the
original's shape whose teacher and embedder are a local OpenAI-compatible server: the bank is built
from that server's answers (computed from each request) and its `/embeddings`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from krill.formats.banks import load_bank
from krill.formats.trajectories import load_trajectories
from krill.testing.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.slow  # ~3 minutes on 2 CPU cores: tiny SFT, RL and a whole `krill train`

DUMMY_KEY = "sk-walkthrough-dummy-3f9a1c"
SERVER_EMBED_DIM = 64  # FakeOpenAIServer's default embedder; MiniLM's is 384
_bin = Path(sys.executable).parent / "krill"
KRILL = [str(_bin)] if _bin.exists() else [sys.executable, "-m", "krill.cli.main"]


def _env(tmp_path: Path) -> dict[str, str]:
    drop = ("KRILL_EMBEDDER", "KRILL_DEBUG")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        KRILL_PRESET="tiny",
        KRILL_CACHE=str(tmp_path / "cache"),
        OPENAI_API_KEY=DUMMY_KEY,
        COLUMNS="100",
        OMP_NUM_THREADS="1",  # 2 shared cores: one torch thread is faster than two fighting
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
    )
    return env


def krill(cwd: Path, env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed `krill` in `cwd`; fail with its output when it exits non-zero."""
    proc = subprocess.run([*KRILL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"krill {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def said(proc: subprocess.CompletedProcess) -> str:
    """stdout + stderr with whitespace collapsed: rich wraps long lines at the terminal width."""
    return " ".join((proc.stdout + proc.stderr).split())


def wrote_path(cwd: Path, stdout: str) -> Path:
    """The folder a verb says it wrote (`wrote runs/sft ...` / `run directory: runs/train`)."""
    m = re.search(r"(?:^wrote|run directory:) (\S+)", stdout, re.M)
    assert m, stdout
    return cwd / m.group(1)


# -- the ETO raw file and the teacher --------------------------------------------------------------
ROOM = "You are in the middle of a room. Looking quickly around you, you see a cabinet 1, a countertop 1, a fridge 1, a microwave 1, a sinkbasin 1, a desklamp 1, and a shelf 1."
ETO_EPISODES = [  # (ALFWorld task type, task, [(action, observation)])
    ("pick_heat_then_place_in_recep", "put a hot egg in countertop.", [
        ("go to fridge 1", "The fridge 1 is closed."), ("open fridge 1", "You open the fridge 1. In it, you see a egg 1."),
        ("take egg 1 from fridge 1", "You pick up the egg 1 from the fridge 1."),
        ("go to microwave 1", "The microwave 1 is closed."), ("heat egg 1 with microwave 1", "You heat the egg 1 using the microwave 1."),
        ("go to countertop 1", "On the countertop 1, you see nothing."), ("move egg 1 to countertop 1", "You move the egg 1 to the countertop 1.")]),
    ("pick_cool_then_place_in_recep", "cool some apple and put it in shelf.", [
        ("go to countertop 1", "On the countertop 1, you see a apple 1."), ("take apple 1 from countertop 1", "You pick up the apple 1."),
        ("go to fridge 1", "The fridge 1 is closed."), ("cool apple 1 with fridge 1", "You cool the apple 1 using the fridge 1."),
        ("go to shelf 1", "On the shelf 1, you see nothing."), ("move apple 1 to shelf 1", "You move the apple 1 to the shelf 1.")]),
    ("pick_clean_then_place_in_recep", "clean some mug and put it in cabinet.", [
        ("go to countertop 1", "On the countertop 1, you see a mug 1."), ("take mug 1 from countertop 1", "You pick up the mug 1."),
        ("go to sinkbasin 1", "On the sinkbasin 1, you see nothing."), ("clean mug 1 with sinkbasin 1", "You clean the mug 1 using the sinkbasin 1."),
        ("go to cabinet 1", "The cabinet 1 is closed."), ("open cabinet 1", "You open the cabinet 1."),
        ("move mug 1 to cabinet 1", "You move the mug 1 to the cabinet 1.")]),
    ("pick_and_place_simple", "put a book in shelf.", [
        ("go to countertop 1", "On the countertop 1, you see a book 1."), ("take book 1 from countertop 1", "You pick up the book 1."),
        ("go to shelf 1", "On the shelf 1, you see nothing."), ("move book 1 to shelf 1", "You move the book 1 to the shelf 1.")]),
    ("look_at_obj_in_light", "examine the cd with the desklamp.", [
        ("go to shelf 1", "On the shelf 1, you see a cd 1."), ("take cd 1 from shelf 1", "You pick up the cd 1."),
        ("go to desklamp 1", "On the desklamp 1, you see nothing."), ("use desklamp 1", "You turn on the desklamp 1.")]),
    ("pick_two_obj_and_place", "put two pencil in cabinet.", [
        ("go to countertop 1", "On the countertop 1, you see a pencil 2, and a pencil 1."),
        ("take pencil 1 from countertop 1", "You pick up the pencil 1."), ("go to cabinet 1", "The cabinet 1 is closed."),
        ("open cabinet 1", "You open the cabinet 1."), ("move pencil 1 to cabinet 1", "You move the pencil 1 to the cabinet 1."),
        ("go to countertop 1", "On the countertop 1, you see a pencil 2."), ("take pencil 2 from countertop 1", "You pick up the pencil 2."),
        ("go to cabinet 1", "The cabinet 1 is open."), ("move pencil 2 to cabinet 1", "You move the pencil 2 to the cabinet 1.")]),
]  # fmt: skip


def eto_raw(copies: int = 2) -> list[dict]:
    """ETO `alfworld_sft.json` entries: instructions, the room + task, then Thought/Action and Observation turns."""
    out = []
    for k in range(copies):
        for task_type, task, acts in ETO_EPISODES:
            conv = [
                {"from": "human", "value": "Interact with a household to solve a task. Use 'Thought:' and 'Action:'."},
                {"from": "gpt", "value": "OK"},
                {"from": "human", "value": f"{ROOM}\nYour task is to: {task}"},
            ]  # fmt: skip
            for action, obs in acts:
                conv.append({"from": "gpt", "value": f"Thought: now I {action}.\nAction: {action}"})
                conv.append({"from": "human", "value": f"Observation: {obs}"})
            game = f"json_2.1.1/train/{task_type}-X-None-Y-{k}/trial_T{k}/game.tw-pddl"
            out.append({"id": f"{task_type}_{k}", "game_file": game, "conversations": conv})
    out.append(
        {
            "id": "chitchat",
            "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "OK"}],
        }
    )
    return out


BLOCK = re.compile(r'<trajectory id="([^"]+)" category="([^"]+)">\nTask: (.*?)\n(.*?)</trajectory>', re.S)
ACTION = re.compile(r"^\d+\. > (\S+)", re.M)


def teacher(messages: list[dict]) -> str:
    """A teacher that reads the trajectories in the request: per category, the verb sequence they share.

    A verb every category used (e.g. `go`) becomes a General skill citing all of them.
    """
    user = messages[-1]["content"]
    by_cat: dict[str, list[tuple[str, str, list[str]]]] = {}
    for tid, cat, task, body in BLOCK.findall(user):
        by_cat.setdefault(cat, []).append((tid, task, list(dict.fromkeys(ACTION.findall(body)))))
    skills = []
    for cat, items in by_cat.items():
        _, task, verbs = items[0]
        plan = " -> ".join(verbs)
        skills.append({
            "name": f"{cat} plan: {plan}", "category": cat, "source_trajectory_ids": [t for t, _, _ in items],
            "principle": f"Do the steps in this order: {plan}; {len(items)} demonstration(s) did.",
            "when_to_apply": f"{cat} tasks such as '{task}'",
        })  # fmt: skip
    shared = (
        set.intersection(*(set(v) for items in by_cat.values() for _, _, v in items)) if by_cat else set()
    )
    if len(by_cat) > 1 and "go" in shared:
        ids = [t for items in by_cat.values() for t, _, _ in items]
        skills.append({"name": "Go to the object first", "category": "General", "source_trajectory_ids": ids,
                       "principle": "Every task starts by going to where the object is.",
                       "when_to_apply": "At the start of any task"})  # fmt: skip
    return json.dumps({"skills": skills, "mistakes": []})


def config_demo(base_url: str) -> dict:
    """The original `config.demo.json`, with every model pointed at the local server and empty keys."""
    return {
        "sft": {"learning_rate": 1e-4, "batch_size": 16, "epochs": 3},
        "rl": {"learning_rate": 1e-6, "batch_size": 64, "group_size": 8, "kl_coeff": 0.01, "clip_epsilon": 0.2,
               "invalid_action_penalty": 0.1, "max_prompt_length": 6000, "max_response_length": 1024,
               "training_epochs": 150},
        "skill_retrieval": {"top_k": 6, "similarity_threshold": 0.4},
        "evolution": {"validation_interval": 5, "max_new_skills": 3, "evolution_threshold": 0.4,
                      "max_analysis_deep": 10, "max_analysis_shallow": 5},
        "model": {
            "policy_api_base": base_url, "policy_model_id": "gpt-4o-mini",
            "teacher_api_base": base_url, "teacher_model_id": "gpt-4o",
            "policy_api_key": "", "teacher_api_key": "",
            "embedding_api_base": base_url, "embedding_model_id": "text-embedding-3-small", "embedding_api_key": "",
        },
    }  # fmt: skip


def files_holding(roots: list[Path], needle: str) -> list[Path]:
    hits = []
    for root in roots:
        for p in root.rglob("*") if root.exists() else []:
            if p.is_file() and needle.encode() in p.read_bytes():
                hits.append(p)
    return hits


# -- the walkthrough -------------------------------------------------------------------------------
def test_original_walkthrough_verbatim(tmp_path):
    cwd = tmp_path / "walk"
    cwd.mkdir()
    env = _env(tmp_path)

    # 1. collect: the embedded simulators, said once
    p = krill(cwd, env, "collect", "--episodes", "64", "--mock")
    told = said(p)
    assert told.count("real TextWorld engine") == 1 and "WebShop simulator" in told
    trajs = json.loads((cwd / "data/trajectories.json").read_text())
    assert isinstance(trajs, list) and len(trajs) == 64
    assert any(t["success"] for t in trajs) and {t["task_category"] for t in trajs} >= {
        "Heat",
        "Cool",
        "Pick",
    }
    assert "wrote 64 trajectories (64 new) to data/trajectories.json" in p.stdout

    # 2. distill: the default output, with real (MiniLM) embeddings
    p = krill(cwd, env, "distill", "--trajectories", "data/trajectories.json")
    bank = load_bank(cwd / "data/skill_bank.json")
    assert len(bank) > 0 and bank.general_skills
    assert f"Wrote {len(bank)} skills" in p.stdout and "data/skill_bank.json" in p.stdout
    assert {len(s.embedding or []) for s in bank.all_skills()} == {384}

    # 3. inspect with no argument: the walkthrough's shape
    p = krill(cwd, env, "inspect")
    first = bank.general_skills[0]
    shown = f"[{first.short_id}] {first.name}\n  Principle: "
    assert shown in p.stdout and "\n  Apply when: " in p.stdout
    assert re.search(r"^\[[0-9a-f]{8}\] \S", p.stdout, re.M)
    assert f"Total skills: {len(bank)}\nGeneral: {len(bank.general_skills)}\n" in p.stdout

    # 4. sft: LoRA weights written where it says
    p = krill(cwd, env, "sft", "--skill-bank", "data/skill_bank.json")
    sft_dir = wrote_path(cwd, p.stdout)
    assert sft_dir == cwd / "runs/sft"
    assert (sft_dir / "adapter_model.safetensors").exists() and (sft_dir / "demos.jsonl").exists()
    assert "demo steps: sft.num_examples = 32 (preset: tiny" in said(p)  # says where the count came from

    # 5. rl: GRPO from the SFT adapter, metrics and an adapter where it says
    p = krill(cwd, env, "rl", "--skill-bank", "data/skill_bank.json")
    rl_dir = wrote_path(cwd, p.stdout)
    assert rl_dir == cwd / "runs/rl" and "starting from the SFT adapter in runs/sft" in said(p)
    assert (rl_dir / "adapter/adapter_model.safetensors").exists()
    metrics = [json.loads(line) for line in (rl_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) >= 2  # tiny preset: 2 iterations

    # 6. train: the whole loop into runs/train, and it says so
    p = krill(cwd, env, "train")
    run_dir = wrote_path(cwd, p.stdout)
    assert run_dir == cwd / "runs/train"
    assert (run_dir / "eval/after.json").exists() and (run_dir / "rl/adapter").is_dir()

    # 7. the ETO data and the original config: teacher and embedder are a local server
    raw = eto_raw()
    (cwd / "data/alfworld_raw.json").write_text(json.dumps(raw))
    p = krill(cwd, env, "convert", "eto", "--input", "data/alfworld_raw.json",
              "--output", "data/alfworld_trajectories.json", "--max", "100")  # fmt: skip
    n, steps = len(raw) - 1, 2 * sum(len(acts) for _, _, acts in ETO_EPISODES)
    summary = "".join(f"  {c}: 2\n" for c in sorted(["Heat", "Cool", "Clean", "Pick", "Look", "PickTwo"]))
    assert f"Converted {n} trajectories:\n{summary}  Total steps: {steps}\n" in p.stdout
    assert f"  Avg steps/trajectory: {steps / n:.1f}\n" in p.stdout
    assert len(load_trajectories(cwd / "data/alfworld_trajectories.json")) == n

    with FakeOpenAIServer(teacher) as srv:
        (cwd / "config.demo.json").write_text(json.dumps(config_demo(srv.base_url), indent=2))
        p = krill(cwd, env, "--config", "config.demo.json", "distill",
                  "--trajectories", "data/alfworld_trajectories.json")  # fmt: skip
        calls = list(srv.calls)
    chats = [c for c in calls if c["path"] == "chat"]
    assert chats and any(c["path"] == "embeddings" for c in calls)
    assert {c["auth"] for c in calls} == {f"Bearer {DUMMY_KEY}"}  # empty key in the file → $OPENAI_API_KEY
    assert {c["body"]["model"] for c in chats} == {"gpt-4o"}
    eto_bank = load_bank(cwd / "data/skill_bank.json")
    per_cat = {c: [s.name for s in eto_bank.task_specific_skills.get(c, [])] for c in ETO_CATS}
    assert all(any(n.startswith(f"{c} plan: go") for n in names) for c, names in per_cat.items()), per_cat
    assert [s.name for s in eto_bank.general_skills] == ["Go to the object first"]
    assert {len(s.embedding or []) for s in eto_bank.all_skills()} == {SERVER_EMBED_DIM}
    assert "teacher" in p.stdout and "llm" in p.stdout

    # the key was used, never written down
    assert files_holding([cwd / "data", cwd / "runs", tmp_path / "cache"], DUMMY_KEY) == []


ETO_CATS = ("Heat", "Cool", "Clean", "Pick", "Look", "PickTwo")
