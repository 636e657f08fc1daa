"""The raw-trajectory memory (`krill ablate`'s `memory` variant): skills' retrieval rule over trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from krill.agent.prompts import Turn, build_conversation, skills_section
from krill.config import KrillConfig, RetrievalConfig
from krill.errors import KrillError
from krill.schema import Step, Trajectory
from krill.skills.memory import MEMORY_HEADER, MemoryRetriever


class TableEmbedder:
    """Each known text has a fixed 3-d vector; anything else lands on the last axis."""

    name = "table"

    def __init__(self, table: dict[str, list[float]]):
        self.table = table
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        return np.asarray([self.table.get(t, [0.0, 0.0, 1.0]) for t in texts], dtype=np.float32)


def traj(id_: str, task: str, success: bool = True, cat: str | None = None) -> Trajectory:
    steps = [Step(observation="You are in a room.", action="go to sinkbasin 1"),
             Step(observation="You arrive at sinkbasin 1.", action=f"done with {id_}")]  # fmt: skip
    return Trajectory(id=id_, task_description=task, task_category=cat, steps=steps, success=success)


TASKS = {
    "put a clean mug in cabinet": [1.0, 0.0, 0.0],  # the query (Clean)
    "put a clean cup in shelf": [0.9, 0.1, 0.0],  # Clean, close
    "put a clean pan in drawer": [0.6, 0.8, 0.0],  # Clean, further
    "put a clean fork in drawer": [0.0, 1.0, 0.0],  # Clean, orthogonal: below any δ > 0
    "heat some egg and put it in fridge": [1.0, 0.0, 0.0],  # Heat: same vector, other category
}


@pytest.fixture
def memory() -> list[Trajectory]:
    return [
        traj("c1", "put a clean cup in shelf"),
        traj("c2", "put a clean pan in drawer"),
        traj("c3", "put a clean fork in drawer"),
        traj("lost", "put a clean cup in shelf", success=False),  # failures are never remembered
        traj("h1", "heat some egg and put it in fridge"),
    ]


def retriever(memory, top_k=2, threshold=0.1) -> MemoryRetriever:
    return MemoryRetriever(memory, TableEmbedder(TASKS), RetrievalConfig(top_k=top_k, threshold=threshold))


def test_top_k_of_the_task_category_above_threshold_best_first(memory):
    r = retriever(memory, top_k=5).retrieve("put a clean mug in cabinet")
    assert r.category == "Clean" and r.mode == "memory"
    # c3 (cosine 0) is under δ, h1 (cosine 1) is another category, `lost` failed
    assert [text.split("\n")[0] for text, _ in r.memories] == [
        "Task: put a clean cup in shelf",
        "Task: put a clean pan in drawer",
    ]
    assert [round(s, 3) for _, s in r.memories] == [0.994, 0.6]
    assert len(retriever(memory, top_k=1).retrieve("put a clean mug in cabinet").memories) == 1


def test_a_category_with_no_memories_searches_all(memory):
    r = retriever(memory, top_k=1).retrieve("put a clean mug in cabinet", category="Cool")
    assert r.category is None
    assert r.memories[0][0].startswith("Task: heat some egg")  # the best match over every category (cosine 1)


def test_the_prompt_shows_trajectories_where_skills_would_be(memory):
    r = retriever(memory).retrieve("put a clean mug in cabinet")
    section = skills_section(r)
    assert section.startswith(MEMORY_HEADER) and "Retrieved Relevant Experience" not in section
    assert "> go to sinkbasin 1" in section and "done with c1" in section
    chat = build_conversation("put a clean mug in cabinet", [Turn("You are in a room.")], KrillConfig(), r)
    first_user = next(m["content"] for m in chat if m["role"] == "user")
    assert first_user.index(MEMORY_HEADER) < first_user.index("## Task")  # where the skills go


def test_memory_needs_a_success():
    with pytest.raises(KrillError, match="at least one successful trajectory"):
        MemoryRetriever([traj("x", "put a clean cup in shelf", success=False)], TableEmbedder(TASKS))


def test_memories_are_embedded_once(memory):
    r = retriever(memory)
    before = r.embedder.calls
    r.retrieve("put a clean mug in cabinet")
    r.retrieve("put a clean pan in drawer")
    assert r.embedder.calls == before + 2  # one query embedding each, the memory never again
