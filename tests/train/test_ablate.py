"""`krill ablate`: each variant's config and phases, shared phases once, resume after a kill.

The wiring tests replace the phases (collect, distill, SFT, RL, eval) with recorders, so they check
what runs with what in milliseconds; `test_tiny_ablation_end_to_end` runs the real thing on the tiny
model, then resumes it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from krill.config import KrillConfig, load_config
from krill.errors import KrillError
from krill.evaluate.stats import GroupStats
from krill.formats.banks import save_bank
from krill.io import append_jsonl, write_json
from krill.schema import SkillBank
from krill.train import ablate
from krill.train.ablate import VARIANTS, parse_variants, run_ablation, variant_config


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def changed_keys(cfg: KrillConfig, other: KrillConfig) -> dict:
    a, b = _flat(cfg.model_dump()), _flat(other.model_dump())
    return {k: b[k] for k in a if a[k] != b[k]}


# The paper's Table 3 rows as config changes: nothing else may differ between variants.
EXPECTED_CHANGES = {
    "base": {},
    "no-skills": {"agent.use_skills": False},
    "memory": {},  # the memory replaces the retriever, not a config key
    "sft": {"sft.seed": 7, "rl.seed": 7},
    "grpo": {"agent.use_skills": False, "evolution.enabled": False, "sft.seed": 7, "rl.seed": 7},
    "skillrl-no-evolution": {"evolution.enabled": False, "sft.seed": 7, "rl.seed": 7},
    "skillrl": {"sft.seed": 7, "rl.seed": 7},  # evolution.enabled is already the default
    "skillrl-no-sft": {"sft.seed": 7, "rl.seed": 7},
    "skillrl-gigpo": {"rl.advantage": "gigpo", "sft.seed": 7, "rl.seed": 7},
    "skillrl-dynamic": {"rl.dynamic_sampling": True, "sft.seed": 7, "rl.seed": 7},
    "skillrl-curriculum": {"skills.curriculum": "linear", "sft.seed": 7, "rl.seed": 7},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_changes_only_its_own_keys(name):
    cfg = KrillConfig()
    assert changed_keys(cfg, variant_config(cfg, name, seed=7)) == EXPECTED_CHANGES[name]


def test_variants_flag_keeps_table_order_and_rejects_unknown_names():
    assert parse_variants("skillrl, base") == ["base", "skillrl"]
    assert parse_variants("") == list(VARIANTS)[:8]  # the paper's table; the options beyond it are opt-in
    assert parse_variants("all") == list(VARIANTS)
    with pytest.raises(KrillError, match="unknown variant 'skilrl'; choose from base, no-skills"):
        parse_variants("base,skilrl")


class Recorder:
    """Stands in for the pipeline phases; records every call with what it was given."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def install(self, monkeypatch):
        monkeypatch.setattr(ablate, "collect_phase", self.collect)
        monkeypatch.setattr(ablate, "distill_phase", self.distill)
        monkeypatch.setattr(ablate, "sft_phase", self.sft)
        monkeypatch.setattr(ablate, "rl_phase", self.rl)
        monkeypatch.setattr(ablate, "eval_phase", self.eval)
        monkeypatch.setattr(ablate, "evolve_hook_for", self.hook)
        monkeypatch.setattr(ablate._Runner, "memory", lambda self, cfg: "MEMORY")

    def hook(self, cfg, rl_dir, banks_dir):  # as the real one: None when the config turns evolution off
        return f"hook→{banks_dir.relative_to(banks_dir.parents[2])}" if cfg.evolution.enabled else None

    def collect(self, cfg, run_dir):
        self.calls.append(("collect",))
        return {}

    def distill(self, cfg, run_dir):
        self.calls.append(("distill",))
        save_bank(SkillBank(), run_dir / "banks" / "cycle_0.json")
        return {}

    def sft(self, cfg, out_dir, bank):
        self.calls.append(("sft", out_dir.name, cfg.sft.seed))
        return {"adapter": str(out_dir)}

    def rl(self, cfg, out_dir, bank, *, init, evolve_hook):
        self.calls.append(
            ("rl", out_dir.parent.parent.name, out_dir.parent.name, init and Path(init).name, evolve_hook)
        )
        save_bank(SkillBank(), out_dir / "bank.json")
        return {"adapter": str(out_dir), "bank": str(out_dir / "bank.json")}

    def eval(self, cfg, out, bank, *, adapter=None, retriever=None):
        variant = out.parent.name if out.parent.name.startswith("seed_") is False else out.parent.parent.name
        if variant == self.fail_on:
            raise KeyboardInterrupt  # the run is killed during this variant's evaluation
        self.calls.append(("eval", variant, adapter and Path(adapter).name, bank is not None,
                           retriever, cfg.agent.use_skills))  # fmt: skip
        stats = GroupStats(10, 3, 0.3, 0.1, 0.6, 0.3, 5.0, 0.0, 100.0, 2.0).to_dict()
        write_json(out, {"format": "krill-eval/1", "results": {"all": stats}})
        return {"path": str(out)}


def test_shared_phases_run_once_and_each_variant_gets_its_inputs(tmp_path, monkeypatch):
    rec = Recorder()
    rec.install(monkeypatch)
    result = run_ablation(KrillConfig(), tmp_path, seeds=2)
    calls = Counter(c[0] for c in rec.calls)
    # one collection and distillation; one SFT per seed (shared by sft, skillrl, skillrl-no-evolution);
    # 4 RL variants × 2 seeds; 3 untrained evals + 5 trained variants × 2 seeds
    assert calls == {"collect": 1, "distill": 1, "sft": 2, "rl": 8, "eval": 13}
    assert [c for c in rec.calls if c[0] == "sft"] == [("sft", "seed_0", 0), ("sft", "seed_1", 1)]
    rl = {c[1:3]: c[3:] for c in rec.calls if c[0] == "rl"}
    assert rl == {  # (variant, seed) → (initial adapter: that seed's SFT or none, evolution hook → its banks)
        ("skillrl-no-evolution", "seed_0"): ("seed_0", None), ("skillrl-no-evolution", "seed_1"): ("seed_1", None),
        ("skillrl", "seed_0"): ("seed_0", "hook→skillrl/seed_0/banks"),
        ("skillrl", "seed_1"): ("seed_1", "hook→skillrl/seed_1/banks"),
        ("grpo", "seed_0"): (None, None), ("grpo", "seed_1"): (None, None),
        ("skillrl-no-sft", "seed_0"): (None, "hook→skillrl-no-sft/seed_0/banks"),
        ("skillrl-no-sft", "seed_1"): (None, "hook→skillrl-no-sft/seed_1/banks"),
    }  # fmt: skip
    evals = {c[1]: c[2:] for c in rec.calls if c[0] == "eval"}  # (adapter, has bank, retriever, use_skills)
    assert evals["base"] == (None, True, None, True)
    assert evals["no-skills"] == (None, False, None, False)
    assert evals["memory"] == (None, False, "MEMORY", True)
    assert evals["sft"] == ("seed_1", True, None, True)  # the SFT adapter itself
    assert evals["grpo"] == ("rl", False, None, False)
    assert evals["skillrl"] == ("rl", True, None, True)
    data = json.loads((tmp_path / "ablation.json").read_text())
    assert [len(data["variants"][n]["runs"]) for n in data["variants"]] == [1, 1, 1, 2, 2, 2, 2, 2]
    assert data["seeds"] == [0, 1] and result.files["markdown"].exists() and result.files["plot"].exists()


def test_rl_variants_train_for_ablate_rl_iterations(tmp_path, monkeypatch):
    rec = Recorder()
    rec.install(monkeypatch)
    seen = []
    real_rl = rec.rl
    monkeypatch.setattr(
        ablate, "rl_phase", lambda cfg, *a, **k: seen.append(cfg.rl.iterations) or real_rl(cfg, *a, **k)
    )
    run_ablation(KrillConfig().override({"rl.iterations": 3, "ablate.rl_iterations": 10}), tmp_path)
    assert seen == [10, 10, 10, 10]  # every RL variant, not krill train's 3
    assert "iterations: 10" in (tmp_path / "config.yaml").read_text()  # the record says what ran


def test_resume_after_a_kill_redoes_no_finished_variant(tmp_path, monkeypatch):
    killed = Recorder(fail_on="sft")
    killed.install(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_ablation(KrillConfig(), tmp_path)
    assert [c[1] for c in killed.calls if c[0] == "eval"] == ["base", "no-skills", "memory"]
    again = Recorder()
    again.install(monkeypatch)
    run_ablation(KrillConfig(), tmp_path)
    redone = [c[:2] for c in again.calls]
    # the SFT finished before the kill: only the sft variant's eval and what follows run
    assert redone[0] == ("eval", "sft") and ("collect",) not in redone and ("sft", "seed_0") not in redone
    assert [c[1] for c in again.calls if c[0] == "eval"] == list(VARIANTS)[3:8]
    rows = [json.loads(line)["phase"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == len(set(rows))  # every phase logged once over both processes


def test_the_curriculum_variant_is_evaluated_with_and_without_skills(tmp_path, monkeypatch):
    rec = Recorder()
    rec.install(monkeypatch)
    run_ablation(KrillConfig(), tmp_path, variants=["skillrl", "skillrl-curriculum"])
    evals = [c for c in rec.calls if c[0] == "eval" and c[1] == "skillrl-curriculum"]
    assert [(e[3], e[5]) for e in evals] == [(True, True), (False, False)]  # (bank given, use_skills)
    data = json.loads((tmp_path / "ablation.json").read_text())
    assert list(data["variants"]) == ["skillrl", "skillrl-curriculum", "skillrl-curriculum without skills"]
    assert "| skillrl-curriculum without skills |" in (tmp_path / "ablation.md").read_text()


class TrainingRecorder(Recorder):
    """As Recorder, but GRPO logs 3 iterations (the 2nd skipped its update, then re-ran after a resume
    and updated) and each eval writes a `skills` block, as the real phases do."""

    def rl(self, cfg, out_dir, bank, *, init, evolve_hook):
        rows = [(1, 0.0), (2, 1.0), (3, 1.0), (2, 0.0)]  # iteration 2's last row: the re-run after the resume
        for it, skipped in rows:
            append_jsonl(out_dir / "metrics.jsonl", {"iteration": it, "update/skipped": skipped})
        done = super().rl(cfg, out_dir, bank, init=init, evolve_hook=evolve_hook)
        return done | {"updates": 1, "iterations": 3}  # the phase's count: this process's iterations only

    def eval(self, cfg, out, bank, *, adapter=None, retriever=None):
        done = super().eval(cfg, out, bank, adapter=adapter, retriever=retriever)
        result = json.loads(out.read_text())
        result["skills"] = {"episodes": 10, "with_skills": 10, "distinct_used": 3, "evolved_in_bank": 2,
                            "with_evolved": 4, "evolved_share": 0.4, "evolved_used": ["e1"]}  # fmt: skip
        write_json(out, result)
        return done


def test_rl_variant_rows_carry_their_weight_updates_and_evolved_prompts(tmp_path, monkeypatch):
    TrainingRecorder().install(monkeypatch)
    run_ablation(KrillConfig(), tmp_path, variants=["base", "skillrl"])
    data = json.loads((tmp_path / "ablation.json").read_text())
    (base,), (skillrl,) = data["variants"]["base"]["runs"], data["variants"]["skillrl"]["runs"]
    assert "rl" not in base and base["skills"]["with_evolved"] == 4
    # counted from the RL log, one row per iteration: not the phase's own count of 1 (this process only)
    assert {k: skillrl["rl"][k] for k in ("updates", "iterations")} == {"updates": 2, "iterations": 3}
    assert [(p["iteration"], p["skipped"]) for p in skillrl["rl"]["curve"]] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert "| 2/3 | 40.0% (4/10) |" in (tmp_path / "ablation.md").read_text()


def test_rl_updates_fall_back_on_the_phase_without_a_log(tmp_path):
    assert ablate.rl_updates({"updates": 1, "iterations": 3}, tmp_path) == {"updates": 1, "iterations": 3}


def test_a_folder_of_another_ablation_is_an_error(tmp_path, monkeypatch):
    Recorder().install(monkeypatch)
    run_ablation(KrillConfig(), tmp_path, variants=["base"])
    with pytest.raises(
        KrillError, match="this run was made with 60, not 30: .* use another --out, or accept"
    ):
        run_ablation(KrillConfig().override({"train.eval_episodes": 30}), tmp_path, variants=["base"])
    # issue 33: another split and step cap were reused beside the new variant, all called "valid_seen"
    changed = KrillConfig().override({"eval.split": "valid_seen", "env.alfworld.max_steps": 3})
    with pytest.raises(KrillError, match="made with 50, not 3") as err:
        run_ablation(changed, tmp_path, variants=["base", "no-skills"])
    assert err.value.where == "env.alfworld.max_steps"


@pytest.mark.slow
@pytest.mark.parametrize("env", ["alfworld", "webshop"])
def test_tiny_ablation_end_to_end(tmp_path, env):
    """The real phases on the tiny model: every variant evaluated on the same games; a re-run redoes nothing."""
    cfg = load_config(preset="tiny").override({"env.name": env})
    out, names = tmp_path / "abl", ["base", "memory", "sft", "skillrl"]
    result = run_ablation(cfg, out, variants=names)
    data = result.data
    tasks = {
        name: sorted(json.loads(line)["id"] for line in (out / run["eval"]).with_suffix("").with_suffix(
            ".trajectories.jsonl").read_text().splitlines())
        for name, v in data["variants"].items() for run in v["runs"]
    }  # fmt: skip
    assert len({tuple(t) for t in tasks.values()}) == 1 and len(tasks["base"]) == cfg.train.eval_episodes
    memory_meta = json.loads((out / "variants/memory/eval.json").read_text())
    assert memory_meta["memory"] is True and memory_meta["use_skills"] is True
    table = (out / "ablation.md").read_text()
    assert "| skillrl |" in table and "reference" in table and (out / "ablation.png").stat().st_size > 1000
    assert ("| score |" in table) == (env == "webshop")  # WebShop's graded score beside success
    done = json.loads((out / "state.json").read_text())["done"]
    assert set(done) == {"collect", "distill", "eval/base", "eval/memory", "sft/seed_0", "eval/sft/seed_0",
                         "rl/skillrl/seed_0", "eval/skillrl/seed_0"}  # fmt: skip
    before = (out / "metrics.jsonl").read_text()
    run_ablation(cfg, out, variants=names)
    assert (out / "metrics.jsonl").read_text() == before  # nothing ran again


def test_a_variant_that_changes_sft_settings_gets_its_own_sft(tmp_path, monkeypatch):
    """Issue 32: shared phases were keyed by name only, so a variant with `sft.*`/`agent.*` overrides
    would have reused the run's SFT adapter, trained under other settings."""
    from krill.train import variants

    rec = Recorder()
    rec.install(monkeypatch)
    changed = variants.Variant("skillrl with another SFT lr", sft=True, rl=True, evolve=True,
                               overrides=(("sft.learning_rate", 3e-3),), paper=False)  # fmt: skip
    monkeypatch.setitem(variants.VARIANTS, "skillrl-lr", changed)
    run_ablation(KrillConfig(), tmp_path, variants=["sft", "skillrl", "skillrl-lr"])
    sfts = [c[1] for c in rec.calls if c[0] == "sft"]
    assert (
        sfts[0] == "seed_0" and len(sfts) == 2 and sfts[1].startswith("seed_0-")
    )  # shared once, then its own
    done = json.loads((tmp_path / "state.json").read_text())["done"]
    assert "sft/seed_0" in done and f"sft/{sfts[1]}" in done
    assert (
        ablate.sft_suffix(KrillConfig(), KrillConfig().override({"rl.learning_rate": 1e-5, "sft.seed": 3}))
        == ""
    )


def test_the_cli_lists_every_registered_variant(capsys):
    from krill.cli.main import main

    with pytest.raises(SystemExit):
        main(["ablate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in ablate.VARIANTS)
