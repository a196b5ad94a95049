"""Inputs for `make test-slurm`: a tiny random llama with the real SmolLM2 tokenizer, a mini GSM8K
and three tiny specs that differ in their learning rate. Usage: python slurm/make_tiny.py OUT_DIR
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from app.inputs.gsm8k import DEFAULT_DIR
from app.inputs.models import embedded_tokenizer_dir


def tiny_model(out: Path) -> Path:
    """A seeded 2-layer llama (as in tests/conftest.py), saved with the tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok_dir = Path(embedded_tokenizer_dir())
    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def mini_gsm8k(out: Path) -> Path:
    """The first 64 train and 8 test rows of the real GSM8K."""
    src = Path(os.environ.get("GSM8K_DIR") or DEFAULT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 64), ("test", 8)):
        lines = (src / f"{split}.jsonl").read_text().splitlines()[:n]
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return out


def specs(out: Path, model: Path, data: Path, steps: int) -> list[Path]:
    paths = []
    for name, lr in (("slurm_a", 1e-3), ("slurm_b", 5e-4), ("slurm_c", 2e-3)):
        spec = {
            "name": name,
            "model": {"id": str(model)},
            "data": {"source": str(data), "train_size": 64, "eval_limit": 4},
            "train": {"max_steps": steps, "lr": lr, "micro_batch_size": 1, "grad_accum": 1, "save_every": 5},
            "eval": {"backend": "hf", "max_new_tokens": 8, "batch_size": 4},
        }
        path = out / f"{name}.json"
        path.write_text(json.dumps(spec, indent=2))
        paths.append(path)
    return paths


if __name__ == "__main__":
    root = Path(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    shutil.rmtree(root / "model", ignore_errors=True)
    for p in specs(root, tiny_model(root / "model"), mini_gsm8k(root / "gsm8k"), steps):
        print(p)
