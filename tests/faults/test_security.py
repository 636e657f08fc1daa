"""Security: keys only from the environment, never written; no pickle loads; the env server's guards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "krill"
# No module may unpickle: a cache file can be replaced by whoever can write the cache folder
# (the ALFWorld translation cache stores SAS text since issue 24).
PICKLE_ALLOWED: set[str] = set()


def test_torch_load_always_weights_only():
    offenders = []
    for py in SRC.rglob("*.py"):
        for i, line in enumerate(py.read_text().splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{py.relative_to(SRC)}:{i}")
            if re.search(r"\bpickle\.loads?\(", line) and str(py.relative_to(SRC)) not in PICKLE_ALLOWED:
                offenders.append(f"{py.relative_to(SRC)}:{i} (pickle)")
    assert not offenders, offenders


def test_config_on_disk_never_holds_the_key(tmp_path, monkeypatch):
    import yaml

    from krill.config import load_config

    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    cfg = load_config(overrides=["model.teacher.backend=llm", "model.teacher.api_base=http://127.0.0.1:9/v1"])
    assert cfg.model.teacher.api_key() == secret  # read from the environment …
    dumped = yaml.safe_dump(cfg.to_public_dict())
    assert secret not in dumped and "OPENAI_API_KEY" in dumped  # … but only its name is written


def test_original_config_key_is_not_kept(tmp_path, capsys):
    import json

    from krill.config import load_config

    secret = "sk-demo-LITERAL-KEY-987"
    p = tmp_path / "config.demo.json"
    p.write_text(json.dumps({"model": {"teacher_api_base": "http://127.0.0.1:9/v1", "teacher_model_id": "o3",
                                       "teacher_api_key": secret}}))  # fmt: skip
    cfg = load_config(p)
    assert secret not in json.dumps(cfg.to_public_dict())


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_env_server_refuses_public_bind_without_token(host, capsys, monkeypatch):
    from krill.cli.main import main

    monkeypatch.delenv("KRILL_ENV_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["env", "serve", "--env", "webshop", "--host", host, "--port", "0"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "token" in err.lower()
