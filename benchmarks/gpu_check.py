"""The GPU path in one command: determinism, speed, memory and generation of the project's own code.

    python benchmarks/gpu_check.py                 # on a GPU: SmolLM2-135M and Qwen2.5-1.5B shapes
    python benchmarks/gpu_check.py --tiny          # tiny shapes (CPU, CI), a few seconds

Needs only torch + transformers (no vLLM, no network, no dataset, no hub): models are randomly
initialised from the real configurations (app/inputs/random_init.py), the tokenizer is trained here on
generated arithmetic stories. For each model shape:
  1. trains a few steps twice with the project's trainer (`app.train.loop.run_training`, bf16 autocast,
     deterministic algorithms) and reports whether losses and saved weights are bitwise identical;
  2. measures training tokens/s and MFU against the GPU's bf16 peak, with and without gradient
     checkpointing, and the peak memory, at the GPU study's micro-batch and sequence length;
  3. runs the HF generation backend (`app.eval.generate.HfGenerator`) twice: tokens/s, identical outputs.
Writes gpu_check.json and gpu_check.md to --out (default docs/gpu on a GPU); exits 1 if a check
failed or raised.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runs from a plain checkout, without installing the project

from app.eval.generate import GenSettings, HfGenerator  # noqa: E402
from app.inputs.prompts import R1_ZERO_V1, answer_span_start, render_prompt, render_target  # noqa: E402
from app.inputs.random_init import SHAPES, param_count, qwen_tokenizer, write_checkpoint  # noqa: E402
from app.rundir.run_dir import RunDir  # noqa: E402
from app.train.loop import load_model, make_optimizer, optimizer_step, run_training, set_determinism, window_loss  # noqa: E402
from app.train.sft_data import encode_example  # noqa: E402

# Dense bf16 tensor-core peaks (TFLOPS) from NVIDIA datasheets; the first name fragment that matches wins.
PEAK_BF16_TFLOPS = (
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100 NVL", 835.5),
    ("H100 PCIe", 756.5),
    ("H100", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
)
GPU_SHAPES, CPU_SHAPES = ("smollm2-135m", "qwen2.5-1.5b"), ("tiny-llama", "tiny-qwen2")


def study_settings(spec: Path) -> dict:
    """Micro-batch, sequence length and dtypes of the GPU study's spec (read as plain JSON)."""
    raw = json.loads(spec.read_text())
    train = raw["train"]
    return {
        "spec": str(spec.relative_to(REPO)),
        "micro_batch_size": train["micro_batch_size"],
        "max_seq_len": train["max_seq_len"],
        "train_dtype": train["dtype"],
        "eval_dtype": raw["model"]["dtype"],
    }


def stories(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(question, GSM8K-style answer with `#### N`, gold) arithmetic stories, generated from a seed."""
    rng = random.Random(seed)
    names, things = ("Ava", "Ben", "Chen", "Dana", "Eli", "Femi"), ("apples", "books", "coins", "eggs", "pens")
    out = []
    for _ in range(n):
        name, thing = rng.choice(names), rng.choice(things)
        a, b, c = rng.randint(2, 90), rng.randint(2, 90), rng.randint(2, 9)
        q = (
            f"{name} has {a} {thing} and buys {b} more, then shares them equally among {c} friends. "
            f"How many {thing} does each friend get, rounded down?"
        )
        total = a + b
        ans = f"{name} has {a} + {b} = {total} {thing}.\nEach gets {total} // {c} = {total // c}.\n#### {total // c}"
        out.append((q, ans, str(total // c)))
    return out


def build_tokenizer():
    texts = [render_prompt(R1_ZERO_V1, q) + render_target(R1_ZERO_V1, a, g) for q, a, g in stories(600)]
    return qwen_tokenizer(texts)


def encode_stories(tokenizer, n: int) -> list:
    """Training examples through the project's masking contract (response-only loss)."""
    examples = []
    for i, (q, a, g) in enumerate(stories(n, seed=1)):
        target = render_target(R1_ZERO_V1, a, g)
        start = answer_span_start(R1_ZERO_V1, target)
        examples.append(encode_example(tokenizer, f"s{i}", render_prompt(R1_ZERO_V1, q), target, start, "response"))
    return examples


def train_twice(base: Path, tokenizer, examples: list, work: Path, args, settings: dict) -> dict:
    """Two identical runs of the project's trainer; bitwise comparison of losses and weights."""
    runs = []
    for name in ("a", "b"):
        run = RunDir(work / name)
        run.path.mkdir(parents=True)
        t0 = time.time()
        # The trainer reads its options as attributes (`opts.<field>`, a TrainSpec in the app); a plain
        # namespace keeps pydantic off a GPU box that has only torch + transformers.
        opts = SimpleNamespace(
            epochs=None, max_steps=args.steps, max_tokens=None, lr=1e-4, schedule="constant", warmup_ratio=0.0,
            min_lr_ratio=0.1, micro_batch_size=args.micro or settings["micro_batch_size"], grad_accum=2,
            max_grad_norm=1.0, weight_decay=0.0, dtype=settings["train_dtype"], group_by_length=False,
            gradient_checkpointing=False, save_every=None, save_every_minutes=None, global_batch=None,
            accumulation=lambda world: 2,  # TrainSpec.accumulation without global_batch: grad_accum
        )  # fmt: skip
        run_training(run, str(base), tokenizer, examples, opts, seed=0, resume=False, progress=False)
        log = [json.loads(ln) for ln in run.file("train_log.jsonl").read_text().splitlines()]
        weights = hashlib.sha256(run.file("checkpoint/model.safetensors").read_bytes()).hexdigest()
        runs.append({"losses": [r["loss"] for r in log], "grad_norms": [r["grad_norm"] for r in log],
                     "weights_sha256": weights, "wall_s": round(time.time() - t0, 2)})  # fmt: skip
    a, b = runs
    return {
        "steps": args.steps,
        "losses_identical": a["losses"] == b["losses"] and a["grad_norms"] == b["grad_norms"],
        "weights_identical": a["weights_sha256"] == b["weights_sha256"],
        "runs": runs,
    }


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for frag, peak in PEAK_BF16_TFLOPS if frag in name), None)


def flops_per_token(n_params: int, config, seq: int) -> int:
    """Model FLOPs per trained token: 6N for the matmuls (forward + backward) plus attention's
    12·layers·hidden·seq (PaLM, appendix B). Checkpointing's recomputation is not counted (MFU, not HFU)."""
    return 6 * n_params + 12 * config.num_hidden_layers * config.hidden_size * seq


def measure_training(base: Path, device: torch.device, checkpointing: bool, args, settings: dict, peak) -> dict:
    """tokens/s of full-length micro-batches through the project's loss and optimizer step."""
    micro, seq = args.micro or settings["micro_batch_size"], args.seq or settings["max_seq_len"]
    set_determinism(0)  # the trainer's settings: deterministic kernels are part of the measured cost
    model = load_model(
        str(base), device, 1, revision=None, trust_remote_code=False, gradient_checkpointing=checkpointing
    )
    optimizer = make_optimizer(model, 1e-5, 0.0)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (micro, seq), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(args.timed_steps + 1):  # step 0 warms up kernels and the allocator
        if i == 1:
            sync(device)
            t0 = time.time()
        window_loss(model, batch, micro * seq, device, settings["train_dtype"]).backward()
        optimizer_step(model, optimizer, 1.0)
    sync(device)
    tps = micro * seq * args.timed_steps / (time.time() - t0)
    flops = flops_per_token(sum(p.numel() for p in model.parameters()), model.config, seq)
    out = {"gradient_checkpointing": checkpointing, "micro_batch_size": micro, "seq_len": seq,
           "tokens_per_s": round(tps, 1), "tflops": round(tps * flops / 1e12, 3),
           "mfu": round(tps * flops / (peak * 1e12), 4) if peak else None}  # fmt: skip
    out.update(memory(device))
    del model, optimizer
    free(device)
    return out


def memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_allocated_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2),
                "peak_reserved_gib": round(torch.cuda.max_memory_reserved(device) / 2**30, 2)}  # fmt: skip
    return {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_generation(base: Path, tokenizer, args, settings: dict) -> dict:
    """The HF backend twice on the same prompts: generated tokens/s and whether outputs repeat."""
    prompts = [tokenizer(render_prompt(R1_ZERO_V1, q), add_special_tokens=False)["input_ids"]
               for q, _, _ in stories(args.prompts, seed=2)]  # fmt: skip
    torch.use_deterministic_algorithms(False)  # as in `repro eval`, which does not force them
    cfg = GenSettings(settings["eval_dtype"], args.new_tokens, ("</answer>",), 0, 4096)
    gen = HfGenerator(str(base), cfg)
    runs = []
    for _ in range(2):
        t0 = time.time()
        outs = gen.generate(prompts)
        wall = time.time() - t0
        runs.append((outs, sum(o.n_tokens for o in outs) / wall))
    gen.close()
    (a, tps_a), (b, tps_b) = runs
    return {
        "prompts": len(prompts),
        "max_new_tokens": args.new_tokens,
        "dtype": settings["eval_dtype"],
        "device": str(gen.device),
        "tokens_per_s": [round(tps_a, 1), round(tps_b, 1)],
        "generated_tokens": sum(o.n_tokens for o in a),
        "identical": [(o.text, o.n_tokens) for o in a] == [(o.text, o.n_tokens) for o in b],
    }


def check_shape(shape: str, tokenizer, device: torch.device, args, settings: dict, peak) -> dict:
    """Every check for one model shape; a check that raises is recorded, and the rest still run."""
    real_vocab = SHAPES[shape][6] if not args.tiny else None
    result: dict = {"family": SHAPES[shape][0]}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        base = write_checkpoint(
            Path(tmp) / "base", shape, tokenizer, dtype=settings["eval_dtype"], vocab_size=real_vocab
        )
        config = json.loads((base / "config.json").read_text())
        result["vocab_size"] = config["vocab_size"]
        result["params"] = param_count(__import__("transformers").AutoConfig.from_pretrained(base))
        examples = encode_stories(tokenizer, 4 * 2 * (args.micro or settings["micro_batch_size"]))
        checks = {
            "determinism": lambda: train_twice(base, tokenizer, examples, Path(tmp) / "runs", args, settings),
            "training": lambda: [measure_training(base, device, gc, args, settings, peak) for gc in (False, True)],
            "generation": lambda: measure_generation(base, tokenizer, args, settings),
        }
        for name, fn in checks.items():
            t0 = time.time()
            try:
                result[name] = fn()
            except Exception as exc:  # noqa: BLE001 - one failing check must not hide the others
                result[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
            result[f"{name}_wall_s"] = round(time.time() - t0, 1)
            free(device)
    return result


def passed(models: dict) -> bool:
    for r in models.values():
        det, gen = r["determinism"], r["generation"]
        if "error" in det or "error" in gen or isinstance(r["training"], dict):
            return False
        if not (det["losses_identical"] and det["weights_identical"] and gen["identical"]):
            return False
    return True


def environment(device: torch.device, peak) -> dict:
    import transformers

    from app.env.driver import driver_version, installed_cuda

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "cuda_runtime": torch.version.cuda, "device": str(device), "cpu": platform.processor() or platform.machine(),
           "driver": driver_version(), "cuda_wheel": installed_cuda(), "peak_bf16_tflops": peak}  # fmt: skip
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return env


def markdown(report: dict) -> str:
    """A short human summary of gpu_check.json."""
    env = report["environment"]
    lines = [
        f"# GPU check ({report['mode']})",
        "",
        f"{env.get('gpu', env['cpu'])}, driver {env['driver']}, torch {env['torch']} (CUDA {env['cuda_runtime']}), "
        f"transformers {env['transformers']}; peak bf16 {env['peak_bf16_tflops']} TFLOPS; "
        f"settings from `{report['settings']['spec']}`. Overall: **{'PASS' if report['passed'] else 'FAIL'}** "
        f"in {report['wall_s']} s.",
        "",
        "| model | params | bitwise-identical losses / weights | train tokens/s (MFU, peak mem) | "
        "with checkpointing | HF generate tokens/s | identical generations |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape, r in report["models"].items():
        cells = [f"{shape} ({r['family']})", f"{r['params'] / 1e6:.1f}M", det_cell(r["determinism"])]
        cells += [train_cell(r["training"], 0), train_cell(r["training"], 1), gen_cell(r["generation"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def det_cell(d: dict) -> str:
    return d["error"][:80] if "error" in d else f"{d['losses_identical']} / {d['weights_identical']}"


def train_cell(t, i: int) -> str:
    if isinstance(t, dict):
        return t["error"][:80]
    r = t[i]
    mem = r.get("peak_allocated_gib", r.get("peak_rss_gib"))
    return f"{r['tokens_per_s']} ({r['mfu'] if r['mfu'] is not None else 'n/a'}, {mem} GiB)"


def gen_cell(g: dict) -> str:
    return g["error"][:80] if "error" in g else f"{g['tokens_per_s'][1]} | {g['identical']}"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and sizes (the default without CUDA)")
    ap.add_argument("--out", type=Path, help="output directory (default docs/gpu on CUDA, else runs/gpu_check)")
    ap.add_argument("--spec", type=Path, default=REPO / "specs" / "B_1024.json", help="the GPU study spec")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per determinism run")
    ap.add_argument("--timed-steps", type=int, default=5, help="timed training steps per throughput measurement")
    ap.add_argument("--micro", type=int, help="micro-batch size (default: the spec's)")
    ap.add_argument("--seq", type=int, help="sequence length (default: the spec's max_seq_len)")
    ap.add_argument("--prompts", type=int, default=16, help="prompts for the generation check")
    ap.add_argument("--new-tokens", type=int, default=128, help="max new tokens per prompt")
    ap.add_argument("--peak-tflops", type=float, help="the GPU's bf16 peak when its name is not in the table")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), help="train and generation dtype (default: the spec's)")
    ap.add_argument("--tmp", type=Path, help="scratch directory for checkpoints (several GB on a GPU)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        args.tiny = True
    if args.tiny:  # CPU/CI sizes, unless given explicitly
        torch.set_num_threads(1)  # tiny matrices gain nothing from threads; on a busy CI machine they spin
        args.micro, args.seq = args.micro or 2, args.seq or 64
        args.steps, args.timed_steps = min(args.steps, 2), min(args.timed_steps, 2)
        args.prompts, args.new_tokens = min(args.prompts, 4), min(args.new_tokens, 8)
        args.dtype = args.dtype or "float32"  # most CPUs emulate bf16 matmuls slowly
    args.out = args.out or (REPO / ("runs/gpu_check" if args.tiny else "docs/gpu"))
    return args


def main(argv=None) -> int:
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:  # the project's floor (pyproject.toml)
        print(f"gpu_check: needs transformers >= 5 (found {transformers.__version__})", file=sys.stderr)
        return 2
    args = parse_args(argv)
    t0 = time.time()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings, peak = study_settings(args.spec), peak_tflops(device, args.peak_tflops)
    if args.dtype:
        settings.update(train_dtype=args.dtype, eval_dtype=args.dtype)
    tokenizer = build_tokenizer()
    shapes = CPU_SHAPES if args.tiny else GPU_SHAPES
    models = {}
    for shape in shapes:
        print(f"gpu_check: {shape} on {device}", flush=True)
        models[shape] = check_shape(shape, tokenizer, device, args, settings, peak)
    report = {"mode": "tiny" if args.tiny else "full", "environment": environment(device, peak),
              "settings": settings, "args": {k: str(v) for k, v in vars(args).items()}, "models": models,
              "passed": passed(models), "wall_s": round(time.time() - t0, 1)}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {args.out / 'gpu_check.json'} and gpu_check.md")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
