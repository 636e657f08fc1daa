"""Synthetic ALFWorld-like trajectories for the distillation tests (+ checks of the generator itself).

A small simulated household: receptacles (some closed), objects placed where ALFWorld tends to put
them, an expert that searches, opens, takes, transforms and places, and failing agents with the
failure modes real random/untrained policies show (invalid actions, loops, step limit, skipped
transformation, wrong receptacle, never finding the object). Observations follow ALFWorld's wording.
"""

from __future__ import annotations

import random

import numpy as np

from krill.schema import Step, Trajectory

CLOSED = {"cabinet", "drawer", "fridge", "microwave", "safe"}
RECEPS = ["countertop 1", "countertop 2", "cabinet 1", "cabinet 2", "cabinet 3", "drawer 1", "drawer 2",
          "fridge 1", "microwave 1", "sinkbasin 1", "diningtable 1", "shelf 1", "shelf 2", "garbagecan 1",
          "stoveburner 1", "desk 1", "sidetable 1", "dresser 1", "bed 1", "sofa 1", "desklamp 1"]  # fmt: skip
# object type → likely receptacle types (weights)
HOMES = {
    "apple": {"countertop": 5, "fridge": 2, "diningtable": 3}, "egg": {"fridge": 4, "countertop": 2},
    "potato": {"countertop": 3, "fridge": 2, "diningtable": 2}, "mug": {"cabinet": 3, "countertop": 2, "shelf": 1},
    "lettuce": {"fridge": 4, "countertop": 2}, "pan": {"stoveburner": 4, "cabinet": 2}, "tomato": {"countertop": 3, "fridge": 2},
    "cloth": {"drawer": 3, "countertop": 2}, "plate": {"cabinet": 4, "diningtable": 2}, "spatula": {"drawer": 3, "countertop": 2},
    "keychain": {"sidetable": 3, "dresser": 2, "drawer": 2}, "cellphone": {"bed": 3, "desk": 2, "sidetable": 2},
    "book": {"shelf": 3, "desk": 2, "bed": 1}, "pen": {"desk": 3, "drawer": 2}, "alarmclock": {"desk": 3, "dresser": 2},
    "pillow": {"bed": 4, "sofa": 2}, "cd": {"shelf": 2, "drawer": 2, "desk": 2},
}  # fmt: skip
TASKS = {
    "Heat": (["apple", "egg", "potato", "mug", "tomato"], ["countertop", "diningtable", "garbagecan", "fridge"]),
    "Cool": (["apple", "lettuce", "pan", "tomato", "mug"], ["countertop", "diningtable", "cabinet", "shelf"]),
    "Clean": (["cloth", "plate", "mug", "spatula", "lettuce"], ["countertop", "drawer", "cabinet", "diningtable"]),
    "Pick": (["keychain", "cellphone", "book", "pen"], ["sidetable", "desk", "dresser", "shelf"]),
    "Look": (["book", "alarmclock", "pen", "cd"], ["desklamp"]),
    "PickTwo": (["cellphone", "pillow", "cd", "book"], ["sofa", "bed", "desk", "shelf"]),
}  # fmt: skip
TOOL = {"Heat": ("heat", "microwave 1"), "Cool": ("cool", "fridge 1"), "Clean": ("clean", "sinkbasin 1")}


def task_text(cat: str, obj: str, dest: str, rng: random.Random, style: int) -> str:
    if cat == "Look":
        return f"look at {obj} under the desklamp." if style else f"examine the {obj} with the desklamp."
    if cat == "PickTwo":
        return f"put two {obj} in {dest}." if style else f"find two {obj} and put them in {dest}."
    if cat in TOOL:
        adj = {"Heat": "hot", "Cool": "cool", "Clean": "clean"}[cat]
        return (
            f"put a {adj} {obj} in {dest}." if style else f"{TOOL[cat][0]} some {obj} and put it in {dest}."
        )
    return f"put a {obj} in {dest}." if style else f"put some {obj} on {dest}."


class World:
    def __init__(self, cat: str, rng: random.Random):
        self.rng, self.cat = rng, cat
        objs, dests = TASKS[cat]
        self.obj, self.dest_type = rng.choice(objs), rng.choice(dests)
        self.dest = next(r for r in RECEPS if r.split()[0] == self.dest_type)
        homes = HOMES[self.obj]
        self.contents: dict[str, list[str]] = {r: [] for r in RECEPS}
        n = 2 if cat == "PickTwo" else 1
        for i in range(n):
            kind = rng.choices(list(homes), weights=list(homes.values()))[0]
            spot = rng.choice([r for r in RECEPS if r.split()[0] == kind] or RECEPS[:1])
            self.contents[spot].append(f"{self.obj} {i + 1}")
        for r in RECEPS:  # distractors
            if rng.random() < 0.5:
                self.contents[r].append(f"{rng.choice(list(HOMES))} {rng.randint(3, 6)}")
        self.opened: set[str] = set()
        self.task = task_text(cat, self.obj, self.dest_type, rng, rng.randint(0, 1))

    def arrive(self, r: str) -> str:
        if r.split()[0] in CLOSED and r not in self.opened:
            return f"You arrive at {r}. The {r} is closed."
        seen = ", ".join(f"a {o}" for o in self.contents[r]) or "nothing"
        return f"You arrive at {r}. On the {r}, you see {seen}."


def expert(cat: str, rng: random.Random, tid: str, style_move: bool) -> Trajectory:
    w = World(cat, rng)
    steps: list[tuple[str, str]] = []
    put = "move {o} to {r}" if style_move else "put {o} in/on {r}"
    for _k in range(2 if cat == "PickTwo" else 1):
        order = sorted(RECEPS, key=lambda r: -HOMES[w.obj].get(r.split()[0], 0) + rng.random() * 2)
        for r in order:
            steps.append((f"go to {r}", w.arrive(r)))
            if r.split()[0] in CLOSED:
                w.opened.add(r)
                steps.append(
                    (
                        f"open {r}",
                        f"You open the {r}. The {r} is open. In it, you see {', '.join(w.contents[r]) or 'nothing'}.",
                    )
                )
            mine = [o for o in w.contents[r] if o.startswith(w.obj + " ")]
            if mine:
                o = mine[0]
                w.contents[r].remove(o)
                steps.append((f"take {o} from {r}", f"You pick up the {o} from the {r}."))
                break
        if cat in TOOL:
            verb, tool = TOOL[cat]
            steps.append((f"go to {tool}", w.arrive(tool)))
            steps.append((f"{verb} {o} with {tool}", f"You {verb} the {o} using the {tool}."))
        if cat == "Look":
            steps.append(("go to desklamp 1", w.arrive("desklamp 1")))
            steps.append(("use desklamp 1", "You turn on the desklamp 1."))
            break
        steps.append((f"go to {w.dest}", w.arrive(w.dest)))
        if w.dest_type in CLOSED and w.dest not in w.opened:
            w.opened.add(w.dest)
            steps.append((f"open {w.dest}", f"You open the {w.dest}. The {w.dest} is open."))
        steps.append((put.format(o=o, r=w.dest), f"You put the {o} in/on the {w.dest}."))
    return _traj(tid, w, cat, steps, True)


def failed(cat: str, rng: random.Random, tid: str, max_steps: int = 30) -> Trajectory:
    """A failing agent: mixes wandering, invalid commands, loops and one category-typical blunder."""
    w = World(cat, rng)
    steps: list[tuple[str, str]] = []
    blunder = rng.choice(["wander", "loop", "invalid", "skip", "wrong_recep", "wrong_obj"])
    while len(steps) < max_steps:
        r = rng.choice(RECEPS)
        if blunder == "loop" and len(steps) > 4:
            steps.append((steps[-1][0] if rng.random() < 0.7 else f"go to {r}", "Nothing happens."))
            continue
        if blunder == "invalid" and rng.random() < 0.5:
            steps.append(
                (
                    rng.choice(
                        [f"take {w.obj} 1 from {r}", f"put {w.obj} 1 in/on {r}", "heat it", "open drawer 9"]
                    ),
                    "Nothing happens.",
                )
            )
            continue
        steps.append((f"go to {r}", w.arrive(r)))
        mine = [o for o in w.contents[r] if o.startswith(w.obj + " ")]
        if blunder in ("skip", "wrong_recep") and mine and r.split()[0] not in CLOSED:
            steps.append((f"take {mine[0]} from {r}", f"You pick up the {mine[0]} from the {r}."))
            wrong = "shelf 1" if w.dest_type != "shelf" else "desk 1"
            target = w.dest if blunder == "skip" else wrong
            steps.append((f"go to {target}", w.arrive(target)))
            steps.append((f"put {mine[0]} in/on {target}", f"You put the {mine[0]} in/on the {target}."))
            break
        others = [o for o in w.contents[r] if not o.startswith(w.obj + " ")]
        if blunder == "wrong_obj" and others and r.split()[0] not in CLOSED:
            steps.append((f"take {others[0]} from {r}", f"You pick up the {others[0]} from the {r}."))
            steps.append((f"go to {w.dest}", w.arrive(w.dest)))
            steps.append((f"put {others[0]} in/on {w.dest}", f"You put the {others[0]} in/on the {w.dest}."))
            break
    return _traj(tid, w, cat, steps[:max_steps], False)


INITIAL = (
    "You are in the middle of a room. Looking quickly around you, you see "
    + ", ".join(f"a {r}" for r in RECEPS)
    + "."
)


def steps_from(pairs: list[tuple[str, str]]) -> list[Step]:
    """(action, its result) pairs → Steps holding the observation seen BEFORE each action, as rollouts record."""
    seen = [INITIAL, *(result for _, result in pairs[:-1])]
    return [
        Step(action=a, observation=o, step_index=i)
        for i, ((a, _), o) in enumerate(zip(pairs, seen, strict=True))
    ]


def _traj(tid: str, w: World, cat: str, steps: list[tuple[str, str]], won: bool) -> Trajectory:
    return Trajectory(
        id=tid, task_description=w.task, task_category=cat, success=won, total_reward=10.0 if won else 0.0,
        steps=steps_from(steps),
        metadata={"environment": "alfworld", "num_steps": len(steps), "max_steps": 30},
    )  # fmt: skip


def synth_trajectories(n_expert: int, n_failed: int, seed: int = 0, prefix: str = "t") -> list[Trajectory]:
    rng = random.Random(seed)
    cats = list(TASKS)
    out = [expert(cats[i % 6], rng, f"{prefix}-ok-{i}", style_move=i % 2 == 0) for i in range(n_expert)]
    out += [failed(cats[i % 6], rng, f"{prefix}-fail-{i}") for i in range(n_failed)]
    return out


class HashEmbedder:
    """Stand-in embedder for tests: hashed word uni/bigrams → L2-normalised vector (deterministic)."""

    name = "test-hash"

    def __init__(self, dim: int = 512):
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        import hashlib

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            words = t.lower().split()
            for tok in words + [a + " " + b for a, b in zip(words, words[1:], strict=False)]:
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def test_generator_gives_successes_and_failures_in_every_category():
    trajs = synth_trajectories(12, 12, seed=1)
    assert {t.task_category for t in trajs if t.success} == set(TASKS)
    assert all(t.steps for t in trajs)
    assert any(s.observation == "Nothing happens." for t in trajs if not t.success for s in t.steps)
