"""Rollouts from an OpenAI-compatible generation server (e.g. vLLM serving the policy with LoRA enabled).

After every update the trained adapter is saved and the server is asked to load it
(`rl.adapter_sync_endpoint`, vLLM's `POST /v1/load_lora_adapter {"lora_name", "lora_path"}`; the
server must run with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` and see the same filesystem). Later
rollouts request that adapter by name. The server's responses are re-templated and re-tokenized with
the local tokenizer for the RL update; end-of-sequence is scored only where the server generated it
(`produced_eos`: vLLM's `stop_reason` says; other servers are guessed from the text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from krill.config import KrillConfig
from krill.errors import KrillError
from krill.models.base import Generation, Messages
from krill.secrets import mask_url


class RemoteRollouts:
    """A Policy that generates on the server and fills in the local prompt text and token ids."""

    def __init__(self, remote: Any, tokenizer: Any):
        self.remote, self.tokenizer = remote, tokenizer
        self.name = getattr(remote, "name", "remote")

    @classmethod
    def after_update(
        cls, cfg: KrillConfig, policy: Any, out_dir: Path, iteration: int, accel: Any
    ) -> RemoteRollouts:
        """Save the adapter of `iteration`, load it into the server (main process), and point rollouts at it."""
        from krill.models import build_policy
        from krill.train.checkpoint import export_model

        # pushed at iteration 0 too: the starting adapter (e.g. --init's SFT adapter) must be what is sampled
        name = f"krill-iter{iteration:04d}"
        path = (Path(out_dir) / "served" / name).resolve()
        if accel.is_main_process:
            export_model(accel.unwrap_model(policy.model), policy.tokenizer, path, cfg)
            load_adapter_on_server(cfg, name, path)
        accel.wait_for_everyone()
        return cls(build_policy(cfg.override({"model.policy.model": name})), policy.tokenizer)

    def generate(self, batch: list[Messages], **kw: Any) -> list[Generation]:
        gens = self.remote.generate(batch, **{**kw, "want_logprobs": False})
        eos = self.tokenizer.eos_token_id
        for msgs, g in zip(batch, gens, strict=True):
            g.prompt_text = self.tokenizer.apply_chat_template(
                msgs, add_generation_prompt=True, tokenize=False
            )
            ids = self.tokenizer(g.text, add_special_tokens=False)["input_ids"]
            g.token_ids = [*ids, eos] if produced_eos(g) else ids
            g.response_tokens = len(g.token_ids)
        return gens


def produced_eos(g: Generation) -> bool:
    """Whether the server's model generated end-of-sequence (so the update must score that token too).

    vLLM says so (`stop_reason` None with finish_reason "stop"); a server that does not is taken to
    have stopped at a stop string when the answer ends in `</action>` (restored by the client), and
    at end-of-sequence otherwise: for bare actions stopped at a newline that guess is wrong, so serve
    the policy with vLLM for RL."""
    if g.finish_reason != "stop":
        return False
    if g.stop_reason_known:
        return g.stop_reason is None
    return not g.text.rstrip().endswith("</action>")


def load_adapter_on_server(cfg: KrillConfig, name: str, path: Path) -> None:
    """POST {lora_name, lora_path} to the server's load-adapter endpoint; a refusal is a one-line error."""
    import httpx

    base = (cfg.model.policy.api_base or "").rstrip("/")
    if not base:
        raise KrillError("rollouts on a server need model.policy.api_base", where="model.policy.api_base")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    url = root + cfg.rl.adapter_sync_endpoint
    shown = mask_url(url)  # errors name the server without the URL's credentials
    headers = {"Authorization": f"Bearer {cfg.model.policy.api_key()}"} if cfg.model.policy.api_key() else {}
    try:
        resp = httpx.post(url, json={"lora_name": name, "lora_path": str(path)}, headers=headers,
                          timeout=cfg.model.policy.timeout)  # fmt: skip
    except httpx.HTTPError as exc:
        raise KrillError(
            f"cannot reach the generation server to load the adapter ({str(exc).replace(url, shown)})",
            where=shown,
        ) from None
    if resp.status_code >= 400:
        raise KrillError(
            f"server refused the adapter: HTTP {resp.status_code} {resp.text[:200]}", where=shown
        )
