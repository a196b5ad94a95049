"""Randomly initialised models of the study's real architectures, built locally without the hub.

- `SHAPES`: the real SmolLM2-135M (llama) and Qwen2.5-Math-1.5B (qwen2) configurations, and tiny
  versions of both for tests and CPU runs.
- `qwen_tokenizer`: a small byte-level BPE trained here with `tokenizers`, with Qwen2's
  pre-tokenizer (digits split one by one), its special tokens after the learnt vocabulary (as in
  Qwen, where they start at id 151643) and Qwen2.5-Math-Instruct's conventions: EOS `<|im_end|>`,
  pad `<|endoftext|>` (not the EOS), no BOS; generation stops at either.
- `write_checkpoint`: model + tokenizer + generation_config in a directory that transformers and
  vLLM load like a hub checkpoint.
"""

from __future__ import annotations

from pathlib import Path

# Qwen2.5's special tokens, in its id order (151643…); the first 14 are "special", the rest plain added.
QWEN_SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
QWEN_ADDED = ("<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>")
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# family, hidden, intermediate, layers, heads, kv heads, vocab, max positions, rope theta, rms eps
SHAPES = {
    "smollm2-135m": ("llama", 576, 1536, 30, 9, 3, 49152, 8192, 100000.0, 1e-5),
    "qwen2.5-1.5b": ("qwen2", 1536, 8960, 28, 12, 2, 151936, 4096, 10000.0, 1e-6),
    # Tiny versions keep the family, GQA and a head_dim vLLM's CPU kernels accept (64).
    "tiny-llama": ("llama", 128, 256, 2, 2, 1, 49152, 2048, 100000.0, 1e-5),
    "tiny-qwen2": ("qwen2", 128, 256, 2, 2, 1, 151936, 2048, 10000.0, 1e-6),
}


def model_config(shape: str, vocab_size: int | None = None, **ids):
    """A transformers config for `shape`; `vocab_size` overrides the real one (tiny tokenizers)."""
    from transformers import LlamaConfig, Qwen2Config

    family, hidden, inter, layers, heads, kv, vocab, positions, theta, eps = SHAPES[shape]
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[family]
    return cls(
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        vocab_size=vocab_size or vocab,
        max_position_embeddings=positions,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        rms_norm_eps=eps,
        tie_word_embeddings=True,
        **ids,
    )


def param_count(config) -> int:
    """Parameters of a model built from `config`, without building it (meta device)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def qwen_tokenizer(texts: list[str], vocab_size: int = 1024):
    """A Qwen2Tokenizer whose BPE is trained on `texts` (deterministic for the same texts)."""
    from tokenizers import Tokenizer, models, trainers
    from transformers import AddedToken, Qwen2Tokenizer

    # Qwen2Tokenizer's own normaliser and pre-tokenizer, so training splits text the way it will encode.
    template = Qwen2Tokenizer(vocab={"<|endoftext|>": 0}, merges=[])._tokenizer
    bpe = Tokenizer(models.BPE())
    bpe.normalizer, bpe.pre_tokenizer = template.normalizer, template.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False, initial_alphabet=_byte_alphabet(), min_frequency=2
    )
    bpe.train_from_iterator(texts, trainer)
    vocab, merges = _vocab_and_merges(bpe)
    # Special and added tokens follow the learnt vocabulary in Qwen's order (<|endoftext|> first).
    vocab.update({t: len(vocab) + i for i, t in enumerate(QWEN_SPECIAL + QWEN_ADDED)})
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None)
    tok.add_special_tokens({"additional_special_tokens": [AddedToken(t, special=True) for t in QWEN_SPECIAL]})
    tok.add_tokens([AddedToken(t, special=False) for t in QWEN_ADDED])
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def _byte_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return pre_tokenizers.ByteLevel.alphabet()


def _vocab_and_merges(bpe) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The trained BPE's vocabulary and ordered merges, read from its JSON form."""
    import json

    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def write_checkpoint(out: Path, shape: str, tokenizer, *, seed: int = 0, dtype: str = "float32", vocab_size=None):
    """Save a randomly initialised `shape` model with `tokenizer` as a loadable checkpoint at `out`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    eos = _eos_ids(tokenizer)
    config = model_config(
        shape,
        vocab_size=vocab_size or padded_vocab(len(tokenizer)),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos[0] if len(eos) == 1 else eos,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def _eos_ids(tokenizer) -> list[int]:
    """The tokenizer's EOS, plus `<|endoftext|>` for Qwen-style tokenizers (Qwen2.5-Math stops at both)."""
    ids = [tokenizer.eos_token_id]
    extra = tokenizer.convert_tokens_to_ids("<|endoftext|>") if "<|endoftext|>" in tokenizer.get_vocab() else None
    if extra is not None and extra not in ids:
        ids.append(extra)
    return ids


def padded_vocab(n: int, multiple: int = 64) -> int:
    """Embedding rows rounded up, as Qwen pads 151,665 tokens to 151,936 rows."""
    return -(-n // multiple) * multiple
