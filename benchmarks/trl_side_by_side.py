"""The project's trainer against TRL's SFTTrainer on the same examples: non-pad training tokens/s.

    pip install --no-deps --target /tmp/trl-pkgs trl            # TRL is not in the project's locks
    PYTHONPATH=/tmp/trl-pkgs python benchmarks/trl_side_by_side.py [--shape smollm2-135m --steps 4]

Both train one randomly initialised model of a real shape (app/inputs/random_init.py) in fp32, on the
same examples (random ids with GSM8K's prompt/response lengths, benchmarks/gsm8k_lengths.json, loss on
the response only), with the same micro-batch, accumulation, optimizer steps, LR, clipping and threads,
in random order (no length grouping on either side). Each is timed per optimizer step after one warm-up
step; the script alternates them `--rounds` times in this one process and prints every figure and the
ratio ours / TRL. TRL is the baseline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_check import build_tokenizer, study_examples  # noqa: E402

from app.inputs.random_init import write_checkpoint  # noqa: E402
from app.rundir.run_dir import RunDir  # noqa: E402
from app.train.loop import run_training  # noqa: E402


def ours(base: Path, tokenizer, examples: list, args, work: Path) -> dict:
    """run_training; tokens/s from its train_log (non-pad tokens over step time), step 0 excluded."""
    opts = SimpleNamespace(
        epochs=None, max_steps=args.steps + 1, max_tokens=None, lr=1e-5, schedule="constant", warmup_ratio=0.0,
        min_lr_ratio=0.1, micro_batch_size=args.micro, grad_accum=args.accum, max_grad_norm=1.0, weight_decay=0.0,
        dtype="float32", group_by_length=False, gradient_checkpointing=False, save_every=None,
        save_every_minutes=None, global_batch=None, accumulation=lambda world: args.accum,
    )  # fmt: skip
    run = RunDir(work)
    run.path.mkdir(parents=True)
    run_training(run, str(base), tokenizer, examples, opts, seed=0, resume=False, progress=False)
    log = [json.loads(ln) for ln in run.file("train_log.jsonl").read_text().splitlines()][1:]
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in log)
    return {"tokens_per_s": sum(r["tokens"] for r in log) / seconds, "steps": len(log)}


def trl(base: Path, tokenizer, examples: list, args, work: Path) -> dict:
    """TRL's SFTTrainer on the same tokenized examples (completion_mask = the response)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    rows = [{"input_ids": e.input_ids, "completion_mask": e.response_mask} for e in examples]
    step_times: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            step_times.append(time.perf_counter() - self.t0)

    config = SFTConfig(
        output_dir=str(work), per_device_train_batch_size=args.micro, gradient_accumulation_steps=args.accum,
        max_steps=args.steps + 1, learning_rate=1e-5, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
        seed=0, bf16=False, completion_only_loss=True, max_length=None, dataloader_num_workers=0,
        optim="adamw_torch", disable_tqdm=True,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    trainer.add_callback(StepClock())
    trainer.train()
    seen = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]  # cumulative, non-pad
    timed = step_times[1:]
    return {"tokens_per_s": (seen[-1] - seen[0]) / sum(timed), "steps": len(timed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="smollm2-135m")
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed optimizer steps (plus one warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two trainers")
    ap.add_argument("--length-scale", type=float, default=0.5, help="scale GSM8K's lengths (CPU: shorter)")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    tokenizer = build_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        base = write_checkpoint(Path(tmp) / "base", args.shape, tokenizer)
        vocab = json.loads((base / "config.json").read_text())["vocab_size"]
        n = args.micro * args.accum * (args.steps + 1)
        examples = study_examples(n, vocab, "response", seed=4, scale=args.length_scale)
        print(f"shape={args.shape} micro={args.micro} accum={args.accum} steps={args.steps} threads="
              f"{torch.get_num_threads()} mean_len={sum(len(e.input_ids) for e in examples) / n:.0f}")  # fmt: skip
        results: dict[str, list[float]] = {"TRL SFTTrainer (baseline)": [], "ours (run_training)": []}
        for r in range(args.rounds):
            for name, fn in (("TRL SFTTrainer (baseline)", trl), ("ours (run_training)", ours)):
                work = Path(tmp) / f"{name.split()[0]}-{r}"
                out = fn(base, tokenizer, examples, args, work)
                shutil.rmtree(work, ignore_errors=True)
                results[name].append(out["tokens_per_s"])
                print(f"round {r}: {name:<26} {out['tokens_per_s']:9.1f} tokens/s over {out['steps']} steps")
    best = {k: max(v) for k, v in results.items()}
    ratio = best["ours (run_training)"] / best["TRL SFTTrainer (baseline)"]
    print(f"best of {args.rounds}: ours {best['ours (run_training)']:.1f}, TRL {best['TRL SFTTrainer (baseline)']:.1f}"
          f" tokens/s; ratio ours/TRL = {ratio:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
