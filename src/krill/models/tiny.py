"""A tiny random Llama + a BPE tokenizer trained in-process: the model every fast test runs on.

The weights are random (outputs are gibberish) but every code path is the real one: chat template,
left padding, KV cache, sampling, log-probs, LoRA. The tokenizer is trained on a small built-in corpus
of ALFWorld/WebShop-like text so agent prompts tokenize to realistic lengths (~4 chars per token).
"""

from __future__ import annotations

import functools
import itertools
import random

import torch

# SmolLM2's tags (ChatML) so prompts look like the real default model's, minus its default system line.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 1000

_OBJECTS = "apple potato egg mug cup plate bowl knife spoon fork pan pot lettuce tomato bread book pen pencil cellphone keychain vase cd creditcard towel soapbar candle pillow watch laptop".split()
_RECEPS = "fridge microwave countertop cabinet drawer sinkbasin stoveburner garbagecan shelf desk sidetable diningtable dresser bed sofa safe toilet bathtubbasin coffeemachine armchair".split()
_VERBS = ["go to", "take", "put", "open", "close", "heat", "cool", "clean", "use", "examine"]
_PRODUCTS = "shirt shoes sneakers jacket dress lamp rug pillow headphones charger cable watch necklace shampoo lotion backpack jeans hoodie speaker mouse keyboard".split()
_ATTRS = "red blue black white green small large medium waterproof wireless cotton leather organic vegan lightweight men women kids".split()

_FIXED = [
    "You are an expert agent operating in the ALFRED Embodied Environment.",
    "You are an expert autonomous agent operating in the WebShop e-commerce environment.",
    "Your admissible actions of the current situation are:",
    "Now it's your turn to take an action. You should first reason step-by-step about the current "
    "situation. This reasoning process MUST be enclosed within <think> </think> tags. Once you've "
    "finished your reasoning, you should choose an admissible action for current step and present "
    "it within <action> </action> tags.",
    "## Retrieved Relevant Experience",
    "### General Principles",
    "### Mistakes to Avoid",
    "Nothing happens.",
    "You arrive at loc 5. On the countertop 1, you see a apple 1, a knife 2, and a plate 3.",
    "Prior to this step, you have already taken 3 step(s). Below are the most recent observations "
    "and the corresponding actions you took:",
    "When to apply: when the target object must be heated before placing it.",
    "Principle: always verify the object is in hand before navigating to the receptacle.",
    "search[red cotton shirt for men under 30 dollars] click[Buy Now] click[< Prev] click[Next >]",
    "Instruction: i need a pair of waterproof hiking shoes, and price lower than 60.00 dollars",
    "inventory look help",
]


def _corpus(n_lines: int = 1500) -> list[str]:
    """Deterministic synthetic text in the style of agent prompts and actions."""
    rng = random.Random(1234)
    lines = list(_FIXED)
    for i in itertools.count():
        if len(lines) >= n_lines:
            break
        obj, rec, n = rng.choice(_OBJECTS), rng.choice(_RECEPS), rng.randint(1, 6)
        verb = _VERBS[i % len(_VERBS)]
        lines.append(
            f"<think>I need to {verb} the {obj}.</think><action>{verb} {obj} {n} from {rec} {n}</action>"
        )
        lines.append(f"Your task is to: put a {obj} in {rec}. You are in the middle of a room.")
        lines.append(
            f"You open the {rec} {n}. The {rec} {n} is open. In it, you see a {obj} {rng.randint(1, 4)}."
        )
        attrs = " ".join(rng.sample(_ATTRS, 2))
        price = f"{rng.randint(5, 120)}.{rng.randint(0, 99):02d}"
        lines.append(
            f"search[{attrs} {rng.choice(_PRODUCTS)}] [SEP] B0{rng.randint(10**7, 10**8 - 1)} [SEP] ${price}"
        )
    return lines


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    """Train the byte-level BPE once per process (deterministic: same corpus, same merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok.to_str()


def build_tiny_tokenizer():
    """A fast HF tokenizer with the ChatML template, pad = eos = <|im_end|>, left padding."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        padding_side="left",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_model(seed: int = 0, *, hidden_size: int = 64, num_layers: int = 2):
    """(LlamaForCausalLM, tokenizer): random weights fixed by `seed`, ~0.1M params, builds in < 1 s."""
    tok = build_tiny_tokenizer()
    model = _random_llama(
        tok,
        seed,
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        # A wide init gives peaked logits, so greedy decoding has clear argmax margins (no near-ties
        # that float rounding could flip between batched and single runs).
        initializer_range=0.2,
    )
    return model, tok


def _random_llama(tok, seed: int, **shape):
    """A LlamaForCausalLM of `shape` with weights drawn from `seed`, wired to `tok`'s special tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **shape,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


# Real architectures' shapes (from their published config.json), for speed and memory checks without
# weights: `random:<name>` loads one with random weights and the tiny tokenizer. The vocabulary size
# is the real one (embedding and LM-head cost are part of the shape); ids the tiny tokenizer lacks
# decode to nothing, which is fine for gibberish.
REAL_SHAPES: dict[str, dict] = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152, rope_theta=100000.0),
    "smollm2-360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                         num_attention_heads=15, num_key_value_heads=5, vocab_size=49152, rope_theta=100000.0),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                         rope_theta=1000000.0, attention_bias=True),
}  # fmt: skip


def build_random_model(shape: str, seed: int = 0, *, initializer_range: float = 0.02):
    """(LlamaForCausalLM of a real shape with random weights, the tiny tokenizer); see REAL_SHAPES."""
    from krill.errors import KrillError

    if shape not in REAL_SHAPES:
        raise KrillError(
            f"unknown model shape {shape!r}; known: {', '.join(sorted(REAL_SHAPES))}",
            where="model.policy.model",
        )
    tok = build_tiny_tokenizer()
    return _random_llama(tok, seed, **REAL_SHAPES[shape], initializer_range=initializer_range), tok
