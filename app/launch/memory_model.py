"""The training memory model `repro plan` and benchmarks/gpu_check.py share: a decoder's shape and its
peak training memory. Pure (no torch, no pydantic), so a GPU box with only torch + transformers can
compare what it measures with what the plan promised.
"""

from __future__ import annotations

from dataclasses import dataclass

CE_CHUNK = 2048  # app/train/loop.CE_CHUNK: supervised positions per fp32 cross-entropy chunk on CUDA


@dataclass(frozen=True)
class Shape:
    """The numbers of a llama/Qwen2-style decoder that the estimates need."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    @property
    def params(self) -> int:
        d = self.hidden
        per_layer = 2 * d * d + 2 * d * self.kv_dim + 3 * d * self.intermediate + 2 * d
        return self.vocab * d * (1 if self.tied else 2) + self.layers * per_layer + d


def shape_from_config(cfg: dict) -> Shape:
    heads = cfg["num_attention_heads"]
    return Shape(
        cfg["vocab_size"],
        cfg["hidden_size"],
        cfg["intermediate_size"],
        cfg["num_hidden_layers"],
        heads,
        cfg.get("num_key_value_heads", heads),
        bool(cfg.get("tie_word_embeddings", False)),
    )


def train_memory(shape: Shape, micro: int, seq: int, dtype: str, checkpointing: bool) -> dict:
    """Peak training memory in GB: fp32 weights, fp32 grads, AdamW's two fp32 moments, activations.

    Activations per token and layer ≈ (6·d + 4·i) values in the compute dtype plus two fp32
    copies of the residual for the norms; with gradient checkpointing only each layer's input is
    kept, plus one layer's full set. Logits on CUDA (app/train/loop.chunked_ce_sum): the
    compute-dtype logits and their gradient whole, plus one chunk of CE_CHUNK positions in fp32
    (copy, log-softmax, gradient); no fp32 copy of all the logits.
    """
    n, d, i = shape.params, shape.hidden, shape.intermediate
    act_bytes = 2 if dtype == "bfloat16" else 4
    per_layer = act_bytes * (6 * d + 4 * i) + 4 * 2 * d
    tokens = micro * seq
    layers = tokens * (4 * d * shape.layers + per_layer) if checkpointing else tokens * per_layer * shape.layers
    logits = tokens * shape.vocab * 2 * act_bytes + min(tokens, CE_CHUNK) * shape.vocab * (4 + 4 + 4)
    gb = {"weights": 4 * n, "grads": 4 * n, "adamw": 8 * n, "activations": layers + logits}
    gb = {k: v / 1e9 for k, v in gb.items()}
    return {**gb, "total": sum(gb.values())}
