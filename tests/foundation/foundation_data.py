"""Test data for the foundation tests (a module with a unique name, importable from test files)."""

from __future__ import annotations

import uuid


def rust_bank_dict() -> dict:
    """A bank exactly as Rust krill's serde writes it (no krill extras)."""

    def skill(name, cat, emb=None):
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "name": name,
            "principle": f"{name}: do the thing that works.",
            "when_to_apply": f"When {name.lower()} applies.",
            "category": "General" if cat is None else {"TaskSpecific": cat},
            "embedding": emb,
        }

    general = [
        skill("Explore Systematically", None, [0.6, 0.8, 0.0]),
        skill("Verify State", None, [0.0, 1.0, 0.0]),
    ]
    heat = [skill("Microwave Heating", "Heat", [1.0, 0.0, 0.0])]
    look = [skill("Use the Desklamp", "Look", None)]
    all_ids = [s["id"] for s in general + heat + look]
    return {
        "general_skills": general,
        "task_specific_skills": {"Heat": heat, "Look": look},
        "history": [
            {"skill_id": i, "added_at": "2025-11-02T10:00:00.123456Z", "evolution_cycle": 0} for i in all_ids
        ],
        "current_cycle": 2,
    }
