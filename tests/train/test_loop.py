"""The SFT loop on a tiny llama with the real tokenizer: accumulation, learning, determinism, resume, DDP."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.launch.stages import encode_train_set, train_stage
from app.rundir.run_dir import sha256_file
from app.spec.run_spec import load_spec
from tests.helpers import repro

REPO = Path(__file__).resolve().parents[2]


def losses(run_dir: Path) -> list[float]:
    return [json.loads(ln)["loss"] for ln in (run_dir / "train_log.jsonl").read_text().splitlines()]


def weights_sha(run_dir: Path) -> str:
    return sha256_file(run_dir / "checkpoint" / "model.safetensors")


def grads_for(model, examples, micro, accum, pad_id, kernel="full"):
    from app.train.loop import window_loss
    from app.train.sft_data import collate

    model.zero_grad()
    n_window = sum(e.n_supervised for e in examples)
    total = 0.0
    for j in range(accum):
        batch = collate(examples[j * micro : (j + 1) * micro], pad_id)
        loss = window_loss(model, batch, n_window, torch.device("cpu"), "float32", kernel)
        loss.backward()
        total += float(loss.detach())
    return total, [p.grad.clone() for p in model.parameters()]


def test_accumulation_1x8_equals_4x2(tiny_spec, tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    examples, _ = encode_train_set(load_spec(tiny_spec()), tokenizer)
    examples = examples[:8]
    assert len({len(e.input_ids) for e in examples}) > 1  # variable lengths make the test meaningful
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    loss_a, grads_a = grads_for(model, examples, micro=8, accum=1, pad_id=tokenizer.pad_token_id)
    loss_b, grads_b = grads_for(model, examples, micro=2, accum=4, pad_id=tokenizer.pad_token_id)
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


def test_chunked_cross_entropy_equals_the_full_one(tiny_spec, tiny_model_dir, tokenizer, monkeypatch):
    """CUDA's loss kernel (supervised positions only, fp32 a chunk at a time, recomputed in backward) gives the
    CPU kernel's loss and gradients; chunks of 5 positions make many chunks and a ragged last one."""
    from transformers import AutoModelForCausalLM

    from app.train import loop

    examples, _ = encode_train_set(load_spec(tiny_spec()), tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    loss_full, grads_full = grads_for(model, examples[:4], 2, 2, tokenizer.pad_token_id)
    monkeypatch.setattr(loop, "CE_CHUNK", 5)
    monkeypatch.setattr(loop.chunked_ce_sum, "__defaults__", (5,))
    loss_chunked, grads_chunked = grads_for(model, examples[:4], 2, 2, tokenizer.pad_token_id, "chunked")
    assert loss_chunked == pytest.approx(loss_full, rel=1e-6)
    for ga, gb in zip(grads_full, grads_chunked):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)


def test_kernels_fused_adamw_and_chunked_loss_on_cuda_only():
    from app.train.loop import adamw_kernel, loss_kernel, make_optimizer

    assert adamw_kernel("cuda") == {"fused": True} and loss_kernel("cuda") == "chunked"
    assert adamw_kernel("cpu") == {"foreach": False} and loss_kernel("cpu") == "full"  # the CPU goldens' kernels
    opt = make_optimizer(torch.nn.Linear(3, 3), 1e-3, 0.0)
    assert opt.defaults["foreach"] is False and not opt.defaults.get("fused")


def test_training_learns_and_writes_artifacts(tiny_spec, tmp_path, tiny_model_dir):
    spec = load_spec(tiny_spec(train={"max_steps": 8, "lr": 1e-2, "schedule": "cosine", "warmup_ratio": 0.25}))
    run = train_stage(spec, tmp_path / "runs", progress=False)
    log = [json.loads(ln) for ln in run.file("train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(8))
    assert sum(r["loss"] for r in log[-2:]) < 0.8 * sum(r["loss"] for r in log[:2])
    # two warmup steps at 1/3 and 2/3 of the peak, then the peak
    assert [r["lr"] for r in log[:3]] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2])
    assert all(0 < r["supervised_ratio"] < 1 and r["grad_norm"] > 0 for r in log)
    assert weights_sha(run.path) != sha256_file(tiny_model_dir / "model.safetensors")
    status = json.loads(run.file("status.json").read_text())
    assert status["stages"]["train"]["state"] == "complete" and status["state"] == "incomplete"
    manifest = json.loads(run.file("manifest.json").read_text())["files"]
    assert "checkpoint/model.safetensors" in manifest and "train_curves.png" in manifest
    assert not run.file("resume").exists()
    gen = json.loads(run.file("checkpoint/generation_config.json").read_text())
    assert gen["eos_token_id"] == 2
    config = json.loads(run.file("checkpoint/config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"]  # transformers 4.x reads this key


def test_complete_run_is_never_overwritten(tiny_spec, tmp_path):
    from app.errors import UserError

    spec = load_spec(tiny_spec(train={"max_steps": 1}))
    train_stage(spec, tmp_path / "runs", progress=False)
    with pytest.raises(UserError, match="already complete"):
        train_stage(spec, tmp_path / "runs", progress=False)


def test_two_runs_are_bitwise_identical(tiny_spec, tmp_path):
    spec = load_spec(tiny_spec(train={"max_steps": 3}))
    a = train_stage(spec, tmp_path / "a", progress=False)
    b = train_stage(spec, tmp_path / "b", progress=False)
    assert losses(a.path) == losses(b.path)
    assert weights_sha(a.path) == weights_sha(b.path)


@pytest.mark.faults
def test_resume_after_sigkill_reaches_identical_weights(tiny_spec, tmp_path):
    spec = str(tiny_spec(name="resume", train={"max_steps": 6, "save_every": 2}))
    whole = repro("train", spec, "--runs-dir", str(tmp_path / "whole"), "--no-progress")
    assert whole.returncode == 0, whole.stderr
    killed = repro(
        "train", spec, "--runs-dir", str(tmp_path / "cut"), "--no-progress", env={"REPRO_FAULT": "train.step:4"}
    )
    assert killed.returncode == -9
    cut_dir = next((tmp_path / "cut").iterdir())
    assert json.loads((cut_dir / "status.json").read_text())["state"] == "running"  # never marked complete
    assert not (cut_dir / "checkpoint").exists()
    refused = repro("train", spec, "--runs-dir", str(tmp_path / "cut"), "--no-progress")
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = repro("train", spec, "--runs-dir", str(tmp_path / "cut"), "--no-progress", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    whole_dir = next((tmp_path / "whole").iterdir())
    assert losses(cut_dir) == losses(whole_dir)
    assert weights_sha(cut_dir) == weights_sha(whole_dir)
    assert json.loads((cut_dir / "train_metrics.json").read_text())["resumed_from_step"] == 4


@pytest.mark.faults
def test_one_spec_on_one_and_two_processes_takes_the_same_steps_on_the_same_examples(tiny_spec, tmp_path):
    """train.global_batch fixes the recipe: 1 process accumulates 4 micro-batches, 2 processes 2 each."""
    spec = tiny_spec(name="recipe", train={"max_steps": 3, "micro_batch_size": 1, "grad_accum": 4, "global_batch": 4})
    one = repro("train", str(spec), "--runs-dir", str(tmp_path / "one"), "--no-progress")
    assert one.returncode == 0, one.stderr
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun (installed with torch) not found next to the test interpreter"
    two = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "app", "train", str(spec)]
        + ["--runs-dir", str(tmp_path / "two"), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert two.returncode == 0, two.stderr[-3000:]
    dir_one, dir_two = next((tmp_path / "one").iterdir()), next((tmp_path / "two").iterdir())
    assert dir_one.name == dir_two.name  # one spec, one run name, whatever the process count
    log_one, log_two = (
        [json.loads(ln) for ln in (d / "train_log.jsonl").read_text().splitlines()] for d in (dir_one, dir_two)
    )
    assert len(log_one) == len(log_two) == 3
    for a, b in zip(log_one, log_two):  # the same examples each step: equal token counts, near-equal loss
        assert (a["tokens"], a["supervised_tokens"]) == (b["tokens"], b["supervised_tokens"])
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    m_one, m_two = (json.loads((d / "train_metrics.json").read_text()) for d in (dir_one, dir_two))
    assert (m_one["world_size"], m_two["world_size"]) == (1, 2)
    assert m_one["global_batch"] == m_two["global_batch"] == 4
    assert m_one["total_steps"] == m_two["total_steps"] == 3


def test_bf16_checkpointing_grouping_and_token_budget(tiny_spec, tmp_path):
    train = {
        "max_steps": None,
        "max_tokens": 3000,
        "dtype": "bfloat16",
        "gradient_checkpointing": True,
        "group_by_length": True,
        "overlong": "drop",
        "max_seq_len": 200,
        "schedule": "cosine",
        "warmup_ratio": 0.05,
    }
    spec = load_spec(tiny_spec(name="opts", train=train))
    run = train_stage(spec, tmp_path, progress=False)
    metrics = json.loads(run.file("train_metrics.json").read_text())
    log = [json.loads(ln) for ln in run.file("train_log.jsonl").read_text().splitlines()]
    # cut at the whole micro-batch nearest the target: off by at most half of one (≤ micro × 200 tokens)
    assert metrics["budget_tokens"] == 3000 and sum(r["tokens"] for r in log) == metrics["tokens_trained"]
    assert abs(metrics["tokens_trained"] - 3000) <= spec.train.micro_batch_size * 200 / 2
    assert metrics["dropped_overlong"] > 0 and metrics["train_examples"] == 16 - metrics["dropped_overlong"]
    assert metrics["kernels"] == {"loss": "full", "adamw": "foreach", "compiled": False}  # the CPU goldens' kernels
    assert all(math.isfinite(r["loss"]) for r in log)
    # 5% of a few steps rounds to one warmup step: it runs at half the peak LR, the next at peak
    assert metrics["warmup_steps"] == 1 and log[0]["lr"] == 0.5e-3 and log[1]["lr"] == 1e-3


def test_device_cpu_trains_on_the_cpu_even_where_a_gpu_is_visible():
    from app.train.loop import init_distributed

    assert init_distributed("cpu") == (0, 1, torch.device("cpu"))
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert init_distributed("auto")[2] == expected


@pytest.mark.slow
def test_train_compile_trains_the_same_model_under_another_name(tiny_spec, tmp_path):
    """train.compile: torch.compile in place; the same parameter names in the checkpoint, losses within
    float noise of eager, recorded, and a different run (fused kernels change the last bits)."""
    from safetensors.torch import load_file

    from app.spec.identity import spec_hash

    eager_spec, compiled_spec = (
        load_spec(tiny_spec(name="eager")),
        load_spec(tiny_spec(name="eager", train={"compile": True})),
    )
    assert spec_hash(eager_spec) != spec_hash(compiled_spec)
    eager = train_stage(eager_spec, tmp_path / "a", progress=False)
    compiled = train_stage(compiled_spec, tmp_path / "b", progress=False)
    assert json.loads(compiled.file("train_metrics.json").read_text())["kernels"]["compiled"] is True
    assert set(load_file(eager.file("checkpoint/model.safetensors"))) == set(
        load_file(compiled.file("checkpoint/model.safetensors"))
    )
    for a, b in zip(losses(eager.path), losses(compiled.path)):
        assert b == pytest.approx(a, rel=1e-3)
