"""The study: the experiment matrix as specs, and a sweep that runs many specs one at a time.

Groups (from the report being reproduced):
  orig – constant LR 2e-5, loss on the whole response; 3 epochs at the two smallest sizes, 1 above
  A    – orig + 5% linear warmup + cosine decay to 10% of the LR
  B    – A + loss on the `<answer>` span only
  C    – B + LR 1e-5 (B and C also run at the two smallest sizes, to test "no worse than before")
  lr   – B at the sweep size with the sweep LRs that B and C do not already cover
  P    – orig with the hardened prompt (`r1_zero_hardened_v1`, the report's §8.1 fix) at the fix sizes
  steps, tokens – orig with the budget of the largest size's one epoch (§8.2): the same optimizer
         steps, or the same trained tokens, at every smaller size (the largest size is orig itself)
  decode – eval-only: a trained arm's checkpoint with more `max_new_tokens` (§8.1 decoding robustness)
Pure apart from the sweep's subprocesses.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from app.inputs.gsm8k import FULL_SIZES
from app.rundir.find import find_run_dir
from app.rundir.layout import EVAL_METRICS_JSON
from app.rundir.run_dir import RunDir
from app.spec.identity import RUN_PREFIX
from app.spec.run_spec import HUB_DATASET, RunSpec, dump_spec, load_spec

LR_SWEEP = (5e-6, 1e-5, 2e-5, 3e-5)


@dataclass(frozen=True)
class StudyPlan:
    """Everything that differs between the GPU study and the scaled-down CPU study."""

    model: str
    sizes: tuple  # ascending; the last may be "full"
    fix_sizes: tuple
    eval_limit: int | None
    max_new_tokens: int
    micro_batch_size: int
    grad_accum: int
    dtype: str
    eval_backend: str = "vllm"
    prefix: str = ""
    group_by_length: bool = False
    # The GPU study reads GSM8K from the hub (fetched once by `repro fetch`), so a fresh machine can run it.
    data_source: str = "local"
    budget_tokens: int = 0  # trained tokens of one epoch of the largest size (the "tokens" arm)
    decode_of: tuple = ()  # (group, size) arms re-evaluated with decode_max_new_tokens
    decode_max_new_tokens: int = 0
    device: str = "auto"  # the GPU study requires CUDA: it must never quietly train for days on the CPU
    # The GPU study fixes the examples per optimizer step, so 1 or 8 GPUs run one recipe (train.global_batch).
    fixed_global_batch: bool = False
    numerics: str = "native"  # the CPU study uses the portable profile, so its bytes are not one CPU's
    # Training-seed replicates: `seeds` runs (seed and subset order 0..seeds-1) of each criterion arm
    # (orig, A, B, C) at `seed_sizes` (None: every size a criterion reads), so verdicts are about recipes.
    seeds: int = 1
    seed_sizes: tuple | None = None


# GPU budget_tokens is an estimate (7473 rows × 257 tokens, the mean measured with SmolLM2's tokenizer);
# the CPU one is measured: tokens_trained of cpu_orig_128 (one epoch of 128 rows).
GPU_PLAN = StudyPlan(
    "Qwen/Qwen2.5-Math-1.5B",
    (128, 256, 512, 1024, "full"),
    (512, 1024, "full"),
    None,
    1024,
    4,
    4,
    "bfloat16",
    data_source=HUB_DATASET,
    budget_tokens=1_920_000,
    decode_of=(("orig", 1024), ("orig", "full")),
    decode_max_new_tokens=2048,
    device="cuda",
    fixed_global_batch=True,
    group_by_length=True,  # ~20% padding at micro-batch 4 without it, ~2% with it
)
CPU_PLAN = StudyPlan(
    "smollm2-135m",
    (32, 64, 128),
    (64, 128),
    64,
    192,
    8,
    2,
    "float32",
    prefix="cpu_",
    group_by_length=True,
    budget_tokens=34146,
    decode_of=(("P", 128),),
    decode_max_new_tokens=384,
    numerics="portable",
    seeds=3,
    seed_sizes=(128,),
)
BUDGET_GROUPS = ("steps", "tokens")


def recipe(group: str) -> dict:
    """Train-section overrides for each group."""
    base = {"lr": 2e-5, "schedule": "constant", "warmup_ratio": 0.0, "min_lr_ratio": 0.1, "loss_mask": "response"}
    if group in ("A", "B", "C", "lr"):
        base.update(schedule="cosine", warmup_ratio=0.05, min_lr_ratio=0.1)
    if group in ("B", "C", "lr"):
        base.update(loss_mask="answer_only")
    if group == "C":
        base.update(lr=1e-5)
    return base


def budget(plan: StudyPlan, group: str, size) -> dict:
    """The training budget: epochs (3 at the two smallest sizes, else 1), or the largest size's one epoch."""
    if group == "steps":
        rows = FULL_SIZES["train"] if plan.sizes[-1] == "full" else plan.sizes[-1]
        return {"max_steps": -(-rows // (plan.micro_batch_size * plan.grad_accum))}
    if group == "tokens":
        return {"max_tokens": plan.budget_tokens}
    return {"epochs": 3 if size in plan.sizes[:2] else 1}


def make_spec(plan: StudyPlan, group: str, size, lr: float | None = None) -> RunSpec:
    """One run of the matrix."""
    train = {
        **recipe(group),
        **budget(plan, group, size),
        "micro_batch_size": plan.micro_batch_size,
        "grad_accum": plan.grad_accum,
        "dtype": plan.dtype,
        "max_grad_norm": 1.0,
        "group_by_length": plan.group_by_length,
        **({"global_batch": plan.micro_batch_size * plan.grad_accum} if plan.fixed_global_batch else {}),
        "overlong": "error",
        "max_seq_len": 1024,
    }
    name = f"{plan.prefix}{group}_{size}"
    if lr is not None:
        train["lr"] = lr
        name = f"{plan.prefix}lr{lr:.0e}_{size}"
    return RunSpec.model_validate(
        {
            "name": name,
            "seed": 0,
            "group": group,
            "device": plan.device,
            "numerics": plan.numerics,
            "model": {"id": plan.model, "dtype": plan.dtype},
            "data": {
                "source": plan.data_source,
                "train_size": size,
                "subset_seed": 0,
                "eval_split": "test",
                "eval_limit": plan.eval_limit,
            },
            "prompt": {"template": "r1_zero_hardened_v1" if group == "P" else "r1_zero_v1"},
            "train": train,
            "eval": {"backend": plan.eval_backend, "max_new_tokens": plan.max_new_tokens},
        }
    )


def decode_spec(plan: StudyPlan, source: RunSpec) -> RunSpec:
    """Eval-only: `source`'s checkpoint under the same eval settings but more new tokens."""
    raw = source.model_dump(mode="json", exclude={"train"})
    raw["name"] = f"{plan.prefix}decode{plan.decode_max_new_tokens}_{source.name.removeprefix(plan.prefix)}"
    raw["group"] = "decode"
    raw["model"]["id"] = RUN_PREFIX + source.name  # by spec name: found through app/rundir/find.py
    raw["eval"]["max_new_tokens"] = plan.decode_max_new_tokens
    return RunSpec.model_validate(raw)


def matrix(plan: StudyPlan) -> list[RunSpec]:
    """The whole study: base model, orig at every size, A/B/C at the fix sizes, B and C small, LR sweep."""
    specs = [base_spec(plan)]
    specs += [make_spec(plan, "orig", s) for s in plan.sizes]
    specs += [make_spec(plan, g, s) for g in ("A", "B", "C") for s in plan.fix_sizes]
    specs += [make_spec(plan, g, s) for g in ("B", "C") for s in plan.sizes[:2] if s not in plan.fix_sizes]
    sweep_size = plan.fix_sizes[-2] if len(plan.fix_sizes) > 1 else plan.fix_sizes[-1]
    covered = {recipe("B")["lr"], recipe("C")["lr"]}
    specs += [make_spec(plan, "lr", sweep_size, lr) for lr in LR_SWEEP if lr not in covered]
    specs += [make_spec(plan, "P", s) for s in plan.fix_sizes]
    specs += [make_spec(plan, g, s) for g in BUDGET_GROUPS for s in plan.sizes[:-1]]
    specs += [decode_spec(plan, make_spec(plan, g, s)) for g, s in plan.decode_of]
    return specs + replicates(plan, specs)


SEED_GROUPS = ("orig", "A", "B", "C")  # the arms the three criteria compare


def replicates(plan: StudyPlan, specs: list[RunSpec]) -> list[RunSpec]:
    """Seeds 1..plan.seeds-1 of every criterion arm at the seed sizes (seed 0 is the arm itself)."""
    sizes = plan.seed_sizes if plan.seed_sizes is not None else plan.sizes
    arms = [s for s in specs if s.group in SEED_GROUPS and s.data.train_size in sizes]
    return [replicate(spec, k) for spec in arms for k in range(1, plan.seeds)]


def replicate(spec: RunSpec, k: int) -> RunSpec:
    """The same recipe with training seed k and subset order k (a different nested subset per seed)."""
    raw = spec.model_dump(mode="json")
    raw["name"], raw["seed"], raw["data"]["subset_seed"] = f"{spec.name}_seed{k}", k, k
    return RunSpec.model_validate(raw)


def base_spec(plan: StudyPlan) -> RunSpec:
    """The untrained model under the same eval settings (the study's zero point)."""
    return RunSpec.model_validate(
        {
            "name": f"{plan.prefix}base",
            "seed": 0,
            "group": "base",
            "device": plan.device,
            "numerics": plan.numerics,
            "model": {"id": plan.model, "dtype": plan.dtype},
            "data": {"source": plan.data_source, "eval_split": "test", "eval_limit": plan.eval_limit},
            "eval": {"backend": plan.eval_backend, "max_new_tokens": plan.max_new_tokens},
        }
    )


def write_matrix(specs: list[RunSpec], out: Path) -> list[Path]:
    """Write each spec as <out>/<name>.json (every default spelled out)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in specs:
        path = out / f"{spec.name}.json"
        path.write_text(dump_spec(spec))
        paths.append(path)
    return paths


def run_state(spec: RunSpec, runs_root: Path) -> str:
    return RunDir(find_run_dir(spec, runs_root)).status()["state"]


def sweep(spec_paths: list[Path], runs_root: Path, retries: int = 1, log=print) -> list[dict]:
    """Run specs one after another, each in its own process (one engine at a time)."""
    results = []
    for path in spec_paths:
        spec = load_spec(path)
        state, attempts, t0 = run_state(spec, runs_root), 0, time.time()
        while state != "complete" and attempts <= retries:
            attempts += 1
            cmd = [sys.executable, "-m", "app", "run", str(path), "--runs-dir", str(runs_root), "--no-progress"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            state = run_state(spec, runs_root)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                log(f"  {spec.name}: attempt {attempts} failed: {tail}")
        results.append(summary_line(spec, runs_root, state, attempts, time.time() - t0, log))
    return results


def summary_line(spec: RunSpec, runs_root: Path, state: str, attempts: int, wall: float, log) -> dict:
    run = RunDir(find_run_dir(spec, runs_root))
    metrics = run.read_json(EVAL_METRICS_JSON, missing_ok=True)
    what = "skipped (complete)" if attempts == 0 else f"{state} after {attempts} attempt(s), {wall:.0f}s"
    acc = f" strict={metrics['strict_accuracy']:.3f} unclosed={metrics['unclosed_rate']:.3f}" if metrics else ""
    log(f"{spec.name}: {what}{acc}")
    return {
        "name": spec.name,
        "state": state,
        "attempts": attempts,
        "path": str(run.path),
        **({"strict_accuracy": metrics["strict_accuracy"]} if metrics else {}),
    }
