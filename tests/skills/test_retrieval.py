"""Retrieval: threshold, top-K, general always in, category filter, unknown → all, template mode,
vectorised == naive loop, deterministic ties, embeddings stored once."""

from __future__ import annotations

import numpy as np
import pytest

from krill.config import RetrievalConfig
from krill.errors import KrillError
from krill.schema import CommonMistake, Skill, SkillBank
from krill.skills.retrieval import Retriever, retrieve, retrieve_naive, top_k_indices

DIM = 4


class AxisEmbedder:
    """Queries name their vector: 'q:0.9,0.1,0,0' → that vector (normalised)."""

    name = "axis"
    dim = DIM

    def __init__(self):
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        out = []
        for t in texts:
            if t.startswith("q:"):
                out.append([float(x) for x in t[2:].split(",")])
            else:  # skills without stored vectors land on the last axis
                out.append([0, 0, 0, 1])
        a = np.asarray(out, dtype=np.float32)
        return a / np.linalg.norm(a, axis=1, keepdims=True)


def sk(id_, cat, vec, name=None):
    return Skill(id=id_, name=name or id_, principle="p", when_to_apply="w", category=cat, embedding=vec)


@pytest.fixture
def bank():
    return SkillBank(
        general_skills=[sk("g1", "General", [1, 0, 0, 0]), sk("g2", "General", [0, 1, 0, 0])],
        task_specific_skills={
            "Heat": [
                sk("h-a", "Heat", [1, 0, 0, 0]),  # cos 1.0 with q:1,0,0,0
                sk("h-b", "Heat", [0.8, 0.6, 0, 0]),  # 0.8
                sk("h-c", "Heat", [0.3, 0.954, 0, 0]),  # 0.3: below δ=0.4
                sk("h-d", "Heat", [0.6, 0.8, 0, 0]),  # 0.6
            ],
            "Cool": [sk("c-a", "Cool", [0.9, 0.436, 0, 0]), sk("c-b", "Cool", [0, 0, 1, 0])],
        },
        common_mistakes=[
            CommonMistake(description="heating without holding", category="Heat"),
            CommonMistake(description="looping on look"),
            CommonMistake(description="cooling in sink", category="Cool"),
        ],
    )


def names(r):
    return [s.id for s, _ in r.specific]


def test_threshold_topk_general_and_mistakes(bank):
    r = Retriever(bank, AxisEmbedder(), RetrievalConfig(top_k=6, threshold=0.4)).retrieve("q:1,0,0,0", "Heat")
    assert [s.id for s in r.general] == ["g1", "g2"]  # general always in, whatever the score
    assert names(r) == ["h-a", "h-b", "h-d"]  # h-c (0.3) is below δ; Cool skills filtered out
    assert [round(x, 3) for _, x in r.specific] == [1.0, 0.8, 0.6]
    assert [m.description for m in r.mistakes] == ["heating without holding", "looping on look"]
    r2 = Retriever(bank, AxisEmbedder(), RetrievalConfig(top_k=2, threshold=0.4)).retrieve(
        "q:1,0,0,0", "Heat"
    )
    assert names(r2) == ["h-a", "h-b"]
    r3 = Retriever(bank, AxisEmbedder(), RetrievalConfig(top_k=6, threshold=0.7)).retrieve(
        "q:1,0,0,0", "Heat"
    )
    assert names(r3) == ["h-a", "h-b"]


def test_unknown_or_missing_category_searches_all(bank):
    ret = Retriever(bank, AxisEmbedder(), RetrievalConfig(top_k=3, threshold=0.4))
    for cat in (None, "Look", "no-such-category"):
        assert names(ret.retrieve("q:1,0,0,0", cat)) == ["h-a", "c-a", "h-b"]
    # inferred from the wording when not given
    assert ret.resolve_category("put a cool apple in countertop", None) == "Cool"


def test_template_mode_returns_whole_category_without_embedder(bank):
    r = Retriever(bank, None, RetrievalConfig(mode="template")).retrieve("anything", "Cool")
    assert names(r) == ["c-a", "c-b"] and r.mode == "template"
    with pytest.raises(KrillError, match="needs an embedder"):
        Retriever(bank, None, RetrievalConfig())


def test_missing_or_wrong_dim_embeddings_are_computed_once_and_stored(bank):
    bank.task_specific_skills["Heat"][0].embedding = None
    bank.task_specific_skills["Cool"][1].embedding = [1.0, 2.0]  # wrong dimension
    emb = AxisEmbedder()
    Retriever(bank, emb, RetrievalConfig())
    assert bank.task_specific_skills["Heat"][0].embedding == [0, 0, 0, 1]
    assert bank.task_specific_skills["Cool"][1].embedding == [0, 0, 0, 1]
    emb.texts.clear()
    Retriever(bank, emb, RetrievalConfig())  # second build: nothing re-embedded
    assert emb.texts == []


def test_ties_broken_by_id_and_deterministic():
    skills = [sk(f"s{i:02d}", "Heat", [1, 0, 0, 0]) for i in (5, 3, 9, 1, 7)]
    bank = SkillBank(task_specific_skills={"Heat": skills})
    r = Retriever(bank, AxisEmbedder(), RetrievalConfig(top_k=3)).retrieve("q:1,0,0,0", "Heat")
    assert names(r) == ["s01", "s03", "s05"]
    # argpartition with many equal scores at the cut still returns exactly the smallest ids
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.9, 0.5])
    assert top_k_indices(scores, 3, 0.4, np.array([5, 4, 3, 2, 1, 0])).tolist() == [4, 1, 5]


def test_vectorised_equals_naive_loop():
    rng = np.random.default_rng(0)
    cats = ["Heat", "Cool", "Clean"]
    bank = SkillBank(task_specific_skills={c: [] for c in cats})
    for i in range(300):
        v = rng.normal(size=DIM)
        bank.task_specific_skills[cats[i % 3]].append(sk(f"id{rng.integers(1e9):09d}", cats[i % 3], list(v)))
    ret = Retriever(bank, AxisEmbedder(), RetrievalConfig(top_k=6, threshold=0.1))
    for _ in range(30):
        q = rng.normal(size=DIM)
        q = q / np.linalg.norm(q)
        text = "q:" + ",".join(f"{x:.6f}" for x in q)
        qv = AxisEmbedder().embed([text])[0]
        for cat in (*cats, None):
            fast = ret.retrieve(text, cat)
            slow = retrieve_naive(bank, qv, cat, 6, 0.1)
            assert names(fast) == [s.id for s, _ in slow]
            assert np.allclose([x for _, x in fast.specific], [x for _, x in slow], atol=1e-5)


def test_front_door_and_max_mistakes(bank):
    r = retrieve(
        bank, "q:0,0,1,0", category="Cool", embedder=AxisEmbedder(), cfg=RetrievalConfig(max_mistakes=1)
    )
    assert names(r) == ["c-b"] and len(r.mistakes) == 1
    assert r.skill_ids() == ["g1", "g2", "c-b"]


def test_max_general_keeps_the_general_skills_closest_to_the_task():
    from krill.config import RetrievalConfig
    from krill.models.embedder import HashEmbedder
    from krill.schema import Skill, SkillBank
    from krill.skills.retrieval import Retriever

    general = [
        Skill(name="Microwave heating", principle="heat food in the microwave", when_to_apply="heat tasks"),
        Skill(name="Sink cleaning", principle="clean things in the sink basin", when_to_apply="clean tasks"),
        Skill(name="Fridge cooling", principle="cool food in the fridge", when_to_apply="cool tasks"),
    ]
    bank = SkillBank(general_skills=general)
    emb = HashEmbedder()
    everything = Retriever(bank, emb, RetrievalConfig()).retrieve("heat the apple in the microwave")
    assert [s.name for s in everything.general] == [s.name for s in general]  # default: all (the paper)
    one = Retriever(bank, emb, RetrievalConfig(max_general=1)).retrieve("heat food in the microwave")
    assert [s.name for s in one.general] == ["Microwave heating"]
    two = Retriever(bank, emb, RetrievalConfig(max_general=2, mode="template")).retrieve("anything")
    assert [s.name for s in two.general] == ["Microwave heating", "Sink cleaning"]
