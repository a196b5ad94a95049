"""Shared fixtures: GSM8K paths, the real SmolLM2 tokenizer, a tiny random llama using it and a tiny Qwen2,
a spec factory on them (and an eval-only spec from it), and one complete tiny run per session."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from app.inputs.gsm8k import DEFAULT_DIR

REPO = Path(__file__).resolve().parent.parent
# Every stage in the interpreter running the tests, whether or not `make stage-envs` built .venv-train and
# .venv-eval here: a test that wants another stage environment sets these itself (tests/launch/test_stage_child.py).
os.environ["REPRO_TRAIN_PYTHON"] = os.environ["REPRO_EVAL_PYTHON"] = sys.executable


def gsm8k_dir() -> Path:
    return Path(os.environ.get("GSM8K_DIR") or DEFAULT_DIR)


@pytest.fixture(scope="session")
def real_gsm8k() -> Path:
    path = gsm8k_dir()
    if not (path / "train.jsonl").is_file():
        pytest.fail(f"real GSM8K not found at {path}: set GSM8K_DIR to a directory with train.jsonl/test.jsonl")
    return path


@pytest.fixture(scope="session")
def mini_gsm8k(tmp_path_factory, real_gsm8k) -> Path:
    """The first 48 train and 12 test rows of the real GSM8K, as a data directory."""
    out = tmp_path_factory.mktemp("gsm8k")
    for split, n in (("train", 48), ("test", 12)):
        lines = (real_gsm8k / f"{split}.jsonl").read_text().splitlines()[:n]
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """The real SmolLM2-135M tokenizer, extracted once from the embedded GGUF."""
    from app.inputs.models import embedded_tokenizer_dir

    return embedded_tokenizer_dir()


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir, tokenizer) -> Path:
    """A randomly initialised 2-layer llama with the real tokenizer (seeded, ~6.5M params)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(out, safe_serialization=True)
    for f in Path(tokenizer_dir).iterdir():
        if f.name.startswith("tokenizer") or f.name in ("special_tokens_map.json", "chat_template.jinja"):
            shutil.copy(f, out / f.name)
    return out


def write_spec(path: Path, **sections) -> Path:
    """Write a spec JSON with the given top-level keys."""
    path.write_text(json.dumps(sections, indent=2))
    return path


@pytest.fixture
def tiny_spec(tmp_path, tiny_model_dir, mini_gsm8k):
    """A factory for specs on the tiny model and the mini GSM8K."""

    def make(name: str = "tiny", train: dict | None = None, eval: dict | None = None, **data) -> Path:
        train_section = {"max_steps": 4, "lr": 1e-3, "micro_batch_size": 2, "grad_accum": 2, **(train or {})}
        return write_spec(
            tmp_path / f"{name}.json",
            name=name,
            seed=0,
            model={"id": str(tiny_model_dir)},
            data={"source": str(mini_gsm8k), "train_size": 16, "eval_limit": 6, **data},
            train=train_section,
            eval={"backend": "hf", "max_new_tokens": 12, "batch_size": 4, **(eval or {})},
        )

    return make


@pytest.fixture
def base_spec(tiny_spec, tmp_path):
    """An eval-only spec (no train section) on the tiny model."""
    path = tiny_spec(name="base")
    raw = json.loads(path.read_text())
    raw.pop("train")
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory, real_gsm8k) -> Path:
    """A randomly initialised 2-layer Qwen2 with a BPE tokenizer trained here on 256 GSM8K rows,
    carrying Qwen's special tokens and EOS/pad conventions (EOS <|im_end|>, pad <|endoftext|>)."""
    from app.inputs.prompts import R1_ZERO_V1, render_prompt, render_target
    from app.inputs.random_init import qwen_tokenizer, write_checkpoint

    rows = [json.loads(ln) for ln in (real_gsm8k / "train.jsonl").read_text().splitlines()[:256]]
    texts = [render_prompt(R1_ZERO_V1, r["question"]) + render_target(R1_ZERO_V1, r["answer"], "0") for r in rows]
    return write_checkpoint(tmp_path_factory.mktemp("qwen") / "model", "tiny-qwen2", qwen_tokenizer(texts))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model_dir, mini_gsm8k) -> Path:
    """A complete train + eval run of the tiny model, checkpoint included, made once per session.
    Tests copy it before changing anything."""
    from app.launch.stages import run_stages
    from app.spec.run_spec import load_spec

    root = tmp_path_factory.mktemp("tiny_run")
    spec = write_spec(
        root / "tiny.json",
        name="tiny",
        seed=0,
        model={"id": str(tiny_model_dir)},
        data={"source": str(mini_gsm8k), "train_size": 8, "eval_limit": 4},
        train={"max_steps": 2, "lr": 1e-3, "micro_batch_size": 2, "grad_accum": 2},
        eval={"backend": "hf", "max_new_tokens": 8, "batch_size": 4},
    )
    return run_stages(load_spec(spec), root / "runs", progress=False).path
