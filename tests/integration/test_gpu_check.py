"""benchmarks/gpu_check.py in its CPU mode (how CI keeps the GPU check working), and the real shapes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shape, params", [("smollm2-135m", 134.5e6), ("qwen2.5-1.5b", 1.54e9)])
def test_shapes_have_the_real_models_parameter_counts(shape, params):
    from app.inputs.random_init import SHAPES, model_config, param_count

    config = model_config(shape)
    assert config.model_type == SHAPES[shape][0]
    assert param_count(config) == pytest.approx(params, rel=0.005)


RUNNER = """
import runpy, sys
sys.argv = ["gpu_check.py", "--tiny", "--out", *sys.argv[1:]]
try:
    runpy.run_path("benchmarks/gpu_check.py", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("HEAVY", sorted(m for m in ("vllm", "pydantic", "typer", "rich") if m in sys.modules))
sys.exit(code)
"""


def test_gpu_check_runs_on_cpu_with_tiny_shapes(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=900
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "HEAVY []" in out.stdout  # a GPU machine with only torch + transformers can run it
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["passed"] and report["mode"] == "tiny"
    assert (
        report["settings"]["micro_batch_size"]
        == json.loads((REPO / "specs/B_1024.json").read_text())["train"]["micro_batch_size"]
    )
    assert {m["family"] for m in report["models"].values()} == {"llama", "qwen2"}
    for model in report["models"].values():
        det = model["determinism"]
        assert det["losses_identical"] and det["weights_identical"] and len(det["runs"][0]["losses"]) == 2
        assert det["global_batch"] == 4  # accumulation: micro-batch 2, two micro-batches per step
        assert [t["gradient_checkpointing"] for t in model["training"]] == [False, True]
        assert all(t["tokens_per_s"] > 0 and t["mfu"] is None for t in model["training"])  # no GPU peak on CPU
        # study-shaped batches: GSM8K's lengths differ, so micro-batches pad (length grouping keeps it small)
        assert all(0 < t["padding_fraction"] < 0.2 and t["longest"] > t["mean_len"] for t in model["training"])
        assert all(t["plan_memory_gb"] > 0 for t in model["training"])
        gen = model["generation"]
        assert gen["identical"] and gen["generated_tokens"] > 0
        assert gen["determinism"]["deterministic_algorithms"]  # repro eval's settings, not switched off
        assert "vllm" not in model  # no GPU, no --vllm: the check needs nothing but torch + transformers
    md = (tmp_path / "gpu_check.md").read_text()
    assert "PASS" in md and "tiny-qwen2 (qwen2)" in md


@pytest.mark.faults
def test_gpu_check_vllm_check_on_vllm_cpu(tmp_path):
    """--vllm: repro eval's engine, the same prompts whole and in chunks of 64, 7 and 1: identical outputs."""
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path), "--vllm"], capture_output=True, text=True, cwd=REPO, timeout=900
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    for model in report["models"].values():
        v = model["vllm"]
        assert v["identical_across_chunks"] and v["generated_tokens"] > 0
        assert set(v["tokens_per_s_by_chunk"]) == {str(v["prompts"]), "64", "7", "1"}
