"""Trajectory files: JSONL and JSON array, streaming errors with line numbers, resumable writer."""

from __future__ import annotations

import json

import pytest

from krill.data import example_trajectories_path
from krill.errors import KrillError
from krill.formats.trajectories import (
    TrajectoryWriter,
    iter_trajectories,
    load_trajectories,
    save_trajectories,
)
from krill.schema import Step, Trajectory


def traj(i: int, steps: int = 2, success: bool = True) -> Trajectory:
    return Trajectory(
        id=f"t{i}",
        task_description=f"put a hot egg {i} in diningtable.",
        task_category="Heat",
        steps=[Step(observation=f"obs {k}", action=f"go to place {k}", step_index=k) for k in range(steps)],
        total_reward=10.0 if success else 0.0,
        success=success,
    )


def test_jsonl_and_array_are_detected_and_equal(tmp_path):
    trajs = [traj(i) for i in range(3)]
    a = save_trajectories(tmp_path / "t.jsonl", trajs)
    b = save_trajectories(tmp_path / "t.json", trajs)
    assert len(a.read_text().splitlines()) == 3
    assert b.read_text().lstrip().startswith("[")
    assert load_trajectories(a) == trajs
    assert [t.model_copy(update={"metadata": {}}) for t in load_trajectories(b)] == trajs
    rust_meta = json.loads(b.read_text())[0]["metadata"]  # the Rust reader requires these fields
    assert rust_meta == {"environment": "", "num_steps": 2, "total_tokens": 0, "skills_used": []}


def test_example_trajectories_ship_with_the_package():
    trajs = load_trajectories(example_trajectories_path(), require_steps=True)
    assert {t.task_category for t in trajs} >= {"Pick", "PickTwo", "Look", "Clean", "Heat", "Cool"}
    assert any(not t.success for t in trajs) and any(t.success for t in trajs)


def test_broken_line_names_its_line_number(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps(traj(0).model_dump()) + "\n" + '{"id": "t1", "task_description": \n')
    it = iter_trajectories(p)
    assert next(it).id == "t0"  # streamed: the good first line is yielded before the error
    with pytest.raises(KrillError, match=r"t\.jsonl: line 2, column \d+: invalid JSON"):
        next(it)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("   \n\n", "empty file"),
        ("[]", "no trajectories"),
        ('{"id": "a", "task_description": "t", "steps": []}\n', "line 1: steps: trajectory has no steps"),
        (
            '\n{"id": "a", "task_description": "t", "steps": [{"observation": "o"}]}\n',
            "line 2: steps[0].action: Field",
        ),
        (
            '{"id": "a", "task_description": "t", "task_category": "Juggle"}\n',
            "line 1: task_category: unknown category",
        ),
        (
            '{"id":"a","task_description":"t","steps":[{"observation":"o","action":"a","reward":NaN}]}',
            "steps[0].reward",
        ),
        ('[{"id": "a", "task_description": "t"}, {"id": "b"}]', "[0]: steps: trajectory has no steps"),
        (
            '[{"id": "a", "task_description": "t", "steps": [{"observation": "o", "action": "a"}]}, {"id": "b"}]',
            "[1]: task_description: Field required",
        ),
        ("hello", "expected trajectories as JSONL"),
    ],
)
def test_bad_trajectory_files(tmp_path, content, message):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(KrillError) as exc:
        load_trajectories(p, require_steps=True)
    assert message in str(exc.value) and str(exc.value).startswith(str(p))


def test_duplicate_ids_are_rejected(tmp_path):
    p = save_trajectories(tmp_path / "t.jsonl", [traj(1), traj(1)])
    with pytest.raises(KrillError, match="duplicate trajectory id 't1'"):
        load_trajectories(p)


def test_writer_resumes_after_a_torn_line(tmp_path):
    p = tmp_path / "collect.jsonl"
    w = TrajectoryWriter(p)
    w.write(traj(0))
    w.write(traj(1))
    with open(p, "ab") as fh:  # a kill -9 in the middle of the third append
        fh.write(b'{"id": "t2", "task_desc')
    w2 = TrajectoryWriter(p, resume=True)
    assert w2.done_ids() == {"t0", "t1"}
    w2.write(traj(2))
    assert [t.id for t in load_trajectories(p)] == ["t0", "t1", "t2"]
    TrajectoryWriter(p)  # resume=False starts over
    assert p.read_text() == ""


def test_writer_to_a_json_array_finishes_atomically(tmp_path):
    p = tmp_path / "data" / "trajectories.json"
    with TrajectoryWriter(p) as w:
        w.write(traj(0))
        assert not p.exists()  # the array appears only when complete
    assert [t.id for t in load_trajectories(p)] == ["t0"]
    w = TrajectoryWriter(p, resume=True)  # resuming a finished array continues from its content
    assert w.done_ids() == {"t0"}
    w.write(traj(1))
    w.close()
    assert [t.id for t in load_trajectories(p)] == ["t0", "t1"]
    assert not (tmp_path / "data" / "trajectories.json.partial.jsonl").exists()
