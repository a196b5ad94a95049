"""`repro plan` arithmetic: parameter counts, steps, tokens, FLOPs, memory, hours and the table;
what it does without fetched data or with a model it cannot size."""

import json
import shutil
from pathlib import Path

import pytest

from app.errors import UserError
from app.launch.plan import (
    GPUS,
    KNOWN,
    MFU,
    STARTUP_S,
    assumptions,
    decode_seconds,
    estimate,
    model_shape,
    spec_set,
    table,
    train_memory,
    warnings,
)
from app.spec.run_spec import load_spec

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """Nothing fetched or cached, no GSM8K directory: what a fresh clone on a login node has."""
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("GSM8K_DIR", str(tmp_path / "no-gsm8k"))
    return tmp_path


def with_source(path: Path, source: str, out: Path) -> Path:
    raw = json.loads(path.read_text())
    raw["data"]["source"] = source
    out.write_text(json.dumps(raw))
    return out


def test_parameter_counts_match_the_published_model_sizes():
    assert KNOWN["Qwen/Qwen2.5-Math-1.5B"].params == pytest.approx(1.54e9, rel=0.01)
    assert KNOWN["smollm2-135m"].params == pytest.approx(134.5e6, rel=0.01)


def test_local_checkpoint_shape_comes_from_its_config(tiny_model_dir):
    shape = model_shape(str(tiny_model_dir))
    assert (shape.hidden, shape.layers, shape.kv_heads, shape.tied) == (64, 2, 1, True)
    with pytest.raises(UserError, match="unknown"):
        model_shape("no-such/model")


def test_train_estimate_follows_the_spec(tiny_spec):
    spec = load_spec(tiny_spec(train={"epochs": 2, "max_steps": None, "loss_mask": "answer_only"}))
    est = estimate(spec, "h100")
    assert est["train_examples"] == 16 and est["steps"] == 2 * 16 // 4  # global batch 2 x 2
    assert 0 < est["supervised_tokens"] < est["train_tokens"] / 5  # the answer span is short
    n = model_shape(spec.model.id).params
    assert est["train_flops"] == pytest.approx(6 * n * est["train_tokens"], rel=1e-6)
    peak = GPUS["h100"].fp32_tflops * 1e12 * MFU  # the spec trains in float32
    assert est["train_hours"] == pytest.approx(est["train_flops"] / peak / 3600)
    assert est["eval_prompts"] == 6 and est["eval_worst_gen_tokens"] == 6 * 12
    startup = 2 * STARTUP_S / 3600  # train and eval stages
    assert est["gpu_hours"] == pytest.approx(est["train_hours"] + est["eval_hours"] + startup)


def test_memory_is_sixteen_bytes_per_parameter_plus_activations():
    shape = KNOWN["Qwen/Qwen2.5-Math-1.5B"]
    mem = train_memory(shape, micro=4, seq=512, dtype="bfloat16", checkpointing=False)
    assert mem["weights"] + mem["grads"] + mem["adamw"] == pytest.approx(16 * shape.params / 1e9)
    ckpt = train_memory(shape, micro=4, seq=512, dtype="bfloat16", checkpointing=True)
    fp32 = train_memory(shape, micro=4, seq=512, dtype="float32", checkpointing=False)
    assert ckpt["activations"] < mem["activations"] < fp32["activations"]
    assert mem["total"] == pytest.approx(sum(v for k, v in mem.items() if k != "total"))


def test_decode_time_grows_with_tokens_and_shrinks_with_bandwidth():
    shape = KNOWN["smollm2-135m"]
    base = decode_seconds(shape, GPUS["a100"], "bfloat16", 64, 64, 150, 512)
    assert decode_seconds(shape, GPUS["a100"], "bfloat16", 64, 64, 150, 1024) > base
    assert decode_seconds(shape, GPUS["h200"], "bfloat16", 64, 64, 150, 512) < base


def test_table_has_a_total_row_and_the_assumptions_name_the_gpu(tiny_spec):
    rows = [estimate(load_spec(tiny_spec(name=n)), "a100") for n in ("x", "y")]
    text = table(rows).splitlines()
    assert text[0].split()[:3] == ["spec", "examples", "steps"]
    assert text[-1].split()[:3] == ["TOTAL", "32", "8"]
    assert assumptions("a100")[0].startswith("GPU a100: 312 TFLOP/s")
    with pytest.raises(UserError, match="--gpu 'tpu'"):
        estimate(load_spec(tiny_spec(name="z")), "tpu")


def test_unfetched_hub_data_is_estimated_from_the_split_sizes_with_one_warning(fresh_clone, real_gsm8k):
    spec = load_spec(SPECS / "B_1024.json")  # openai/gsm8k, not fetched here
    est = estimate(spec, "h100")
    assert (est["train_examples"], est["eval_prompts"]) == (1024, 1319)
    [line] = est["warnings"]
    assert "openai/gsm8k is not fetched" in line and "7473 train/1319 test" in line, line
    real = estimate(load_spec(with_source(SPECS / "B_1024.json", str(real_gsm8k), fresh_clone / "r.json")), "h100")
    assert real["warnings"] == [] and real["steps"] == est["steps"]
    for key in ("train_tokens", "supervised_tokens", "eval_hours", "gpu_hours"):
        assert est[key] == pytest.approx(real[key], rel=0.03), key  # mean lengths give the sums
    assert est["longest_example"] >= real["longest_example"]  # the split's longest row: memory is not understated


def test_a_missing_local_directory_is_estimated_and_named(fresh_clone):
    rows = [estimate(load_spec(SPECS / name), "h100") for name in ("smoke_cpu.json", "smoke_base_cpu.json")]
    assert [(e["train_examples"], e["eval_prompts"]) for e in rows] == [(64, 64), (0, 64)]
    [line] = warnings(rows)  # the same cause is said once
    assert line.startswith("warning: plan: ") and f"{fresh_clone / 'no-gsm8k'} not found" in line, line


def test_a_run_model_is_sized_from_the_spec_of_that_run(fresh_clone):
    qwen = KNOWN["Qwen/Qwen2.5-Math-1.5B"].params
    decode = SPECS / "decode2048_orig_1024.json"  # model.id run:orig_1024; orig_1024.json beside it
    named = spec_set([(decode, load_spec(decode))])
    assert sorted(named) == ["decode2048_orig_1024", "orig_1024"]
    est = estimate(named["decode2048_orig_1024"], "h100", named)
    assert (est["model"], est["params"]) == ("Qwen/Qwen2.5-Math-1.5B", qwen) and est["gpu_hours"] > 0
    alone = Path(shutil.copy(decode, fresh_clone / decode.name))  # no spec of that run anywhere near
    est = estimate(load_spec(alone), "h100", spec_set([(alone, load_spec(alone))]))
    assert (est["model"], est["params"], est["gpu_hours"]) == ("run:orig_1024", None, None)
    given = [(alone, load_spec(alone)), (SPECS / "orig_1024.json", load_spec(SPECS / "orig_1024.json"))]
    assert estimate(load_spec(alone), "h100", spec_set(given))["params"] == qwen  # found among the given specs


def test_a_model_of_unknown_size_is_named_in_the_table_not_fatal(tiny_spec):
    known = estimate(load_spec(tiny_spec(name="known")), "h100")
    odd = tiny_spec(name="odd")
    odd.write_text(json.dumps({**json.loads(odd.read_text()), "model": {"id": "no-such/model"}}))
    est = estimate(load_spec(odd), "h100")
    assert est["params"] is None and est["train_hours"] is None and est["gpu_hours"] is None
    assert (est["train_examples"], est["steps"]) == (known["train_examples"], known["steps"])  # counted all the same
    rows = {line.split()[0]: line for line in table([known, est]).splitlines()}
    assert "odd (size of no-such/model unknown)" in rows["odd"] and rows["odd"].rstrip().endswith("?")
    assert rows["TOTAL"].split()[-1] == f"{known['gpu_hours']:.3f}+?", rows["TOTAL"]


def test_training_tokens_are_counted_with_the_specs_own_tokenizer(tokenizer_dir, real_gsm8k):
    """With the tokenizer cached, plan counts what training trains: cpu_orig_128's recorded tokens_trained."""
    from app.launch.plan import cached_tokenizer

    assert cached_tokenizer("smollm2-135m") == tokenizer_dir
    assert cached_tokenizer("no-such/model-here") is None
    run = next((REPO / "docs" / "cpu_study" / "runs").glob("cpu_orig_128-*"))
    trained = json.loads((run / "train_metrics.json").read_text())["tokens_trained"]
    spec = load_spec(REPO / "specs" / "cpu_study" / "cpu_orig_128.json")
    assert estimate(spec, "h100")["train_tokens"] == trained


def test_eval_estimate_assumes_the_engine_schedules_hundreds_not_eval_batch_size():
    """repro eval submits >= 512 prompts per call on a GPU; vLLM decodes MAX_NUM_SEQS at once: fewer,
    fuller decode steps than chunks of eval.batch_size (64) would take."""
    from app.launch.plan import MAX_NUM_SEQS, engine_concurrency

    assert engine_concurrency(64) == MAX_NUM_SEQS == 256
    shape = KNOWN["Qwen/Qwen2.5-Math-1.5B"]
    chunks_of_64 = decode_seconds(shape, GPUS["h100"], "bfloat16", 1319, 64, 150, 1024)
    assert decode_seconds(shape, GPUS["h100"], "bfloat16", 1319, 256, 150, 1024) < chunks_of_64 / 2


def test_plan_ce_chunk_is_the_trainers():
    pytest.importorskip("torch")
    from app.launch import plan
    from app.train import loop

    assert plan.CE_CHUNK == loop.CE_CHUNK


def test_a_committed_gpu_check_replaces_the_assumed_mfu(tiny_spec, tmp_path, monkeypatch):
    """docs/gpu/gpu_check.json from an H100 (full mode) sets the H100's MFU; other GPUs keep the assumption."""
    from app.launch import plan

    report = {"mode": "full", "environment": {"gpu": "NVIDIA H100 80GB HBM3"},
              "models": {"qwen2.5-1.5b": {"training": [{"mfu": 0.21}, {"mfu": 0.17}]}}}  # fmt: skip
    (tmp_path / "docs" / "gpu").mkdir(parents=True)
    monkeypatch.setattr(plan, "GPU_CHECK", tmp_path / "docs" / "gpu" / "gpu_check.json")
    plan.GPU_CHECK.write_text(json.dumps(report))
    spec = load_spec(tiny_spec())
    assumed = plan.train_estimate(spec, plan.plan_rows(spec)[0], plan.known_shape(spec.model.id), GPUS["h100"])
    measured = estimate(spec, "h100")
    assert measured["train_hours"] == pytest.approx(assumed["train_hours"] * MFU / 0.21)
    assert "21% MFU measured by make gpu-check on NVIDIA H100" in " ".join(assumptions("h100"))
    assert estimate(spec, "a100")["train_hours"] > 0 and f"{MFU:.0%} MFU" in " ".join(assumptions("a100"))
    report["mode"] = "tiny"
    plan.GPU_CHECK.write_text(json.dumps(report))
    assert plan.measured_mfu("h100") is None  # a CPU run of the check measures nothing about a GPU
