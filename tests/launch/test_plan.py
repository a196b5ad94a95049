"""`repro plan` arithmetic: parameter counts, steps, tokens, FLOPs, memory, hours and the table."""

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
    table,
    train_memory,
)
from app.spec.run_spec import load_spec


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
