"""Token ids of a chat that grows turn by turn, built by appending so earlier ids never change.

In `agent.context: conversation` an episode is one chat. Re-templating and re-tokenizing the whole
chat every step would be wasteful and, worse, not exact: a sampled reply need not be the canonical
tokenization of its text. So the ids are built by appending: the first prompt is templated once,
then every step adds the reply's own sampled ids and the ids of what the template puts after a
reply (its end-of-turn, the next user turn, the generation prompt). The local decoder prefills only
the new part (its prefix cache holds the rest), SFT trains on the same layout, and GRPO scores the
exact ids the policy saw in one forward pass.

The text around a reply is read off the tokenizer's own chat template (with placeholder contents),
so any template whose turns end in a special token works (ChatML, Llama-3, ...).
"""

from __future__ import annotations

from typing import Any

_REPLY = "KRILL-REPLY-7f3a"
_USER = "KRILL-USER-7f3a"


class ChatTokens:
    """Appends chat turns to token ids: `start(messages)`, then `after_reply(reply_ids, user)` per step."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        rendered = tokenizer.apply_chat_template(
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": _REPLY},
                {"role": "user", "content": _USER},
            ],
            add_generation_prompt=True,
            tokenize=False,
        )
        after = rendered[rendered.index(_REPLY) + len(_REPLY) :]
        # e.g. ChatML: "<|im_end|>\n<|im_start|>user\n" + USER + "<|im_end|>\n<|im_start|>assistant\n"
        self.close_reply, self.after_user = after.split(_USER)
        self.end_of_turn = tokenizer.eos_token_id
        self.end_text = tokenizer.decode([self.end_of_turn]) if self.end_of_turn is not None else ""

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def start(self, messages: list[dict[str, str]]) -> list[int]:
        """The ids of the templated chat so far, with the generation prompt (the first step's context)."""
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.encode(text)

    def after_reply(self, reply_ids: list[int], user: str) -> list[int]:
        """What follows a reply: its end-of-turn (unless it ended with one), the user turn, the generation prompt."""
        close = self.close_reply
        if (
            reply_ids
            and reply_ids[-1] == self.end_of_turn
            and self.end_text
            and close.startswith(self.end_text)
        ):
            close = close[len(self.end_text) :]  # the model closed its own turn
        return self.encode(close + user + self.after_user)

    def reply(self, text: str) -> list[int]:
        """A written reply (an SFT target) as the policy would end it: its ids, then end-of-turn."""
        return [*self.encode(text), self.end_of_turn]

    def conversation(self, messages: list[dict[str, str]]) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids of a whole chat (every assistant turn a written reply) and each reply's [start, end) span."""
        first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
        ids = self.start(messages[:first])
        spans = []
        for i in range(first, len(messages)):
            m = messages[i]
            if m["role"] != "assistant":
                continue
            reply = self.reply(m["content"])
            spans.append((len(ids), len(ids) + len(reply)))
            ids += reply
            nxt = messages[i + 1] if i + 1 < len(messages) else None
            if nxt is not None and nxt["role"] == "user":
                ids += self.after_reply(reply, nxt["content"])
        return ids, spans
