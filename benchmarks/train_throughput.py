"""Training-step throughput with random weights: fp32 (the baseline) vs bf16 autocast, same batches.

    python benchmarks/train_throughput.py                      # SmolLM2-135M shape, CPU
    python benchmarks/train_throughput.py --shape qwen2.5-1.5b --batch 8 --steps 5   # on a GPU

Uses the project's own loss (`app.train.loop.window_loss`) and optimizer, on random token batches of a
fixed length; prints tokens/s for each dtype and the bf16/fp32 ratio, plus peak GPU memory.
"""

from __future__ import annotations

import argparse
import time

import torch

from app.train.loop import make_optimizer, optimizer_step, window_loss

SHAPES = ("smollm2-135m", "qwen2.5-1.5b")  # real configurations, random weights (app/inputs/random_init.py)


def run(shape: str, dtype: str, batch: int, seq: int, steps: int, device: torch.device) -> float:
    from transformers import AutoModelForCausalLM

    from app.inputs.random_init import model_config

    torch.manual_seed(0)
    config = model_config(shape)
    model = AutoModelForCausalLM.from_config(config).to(device).train()
    opt = make_optimizer(model, 1e-5, 0.0)
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    n_tokens = batch * seq
    for i in range(steps + 1):  # the first step warms up kernels and allocators
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
        loss = window_loss(model, data, n_tokens, device, dtype)
        loss.backward()
        optimizer_step(model, opt, 1.0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n_tokens * steps / (time.time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="smollm2-135m", choices=SHAPES)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"shape={args.shape} device={device} batch={args.batch} seq={args.seq} steps={args.steps}")
    fp32 = run(args.shape, "float32", args.batch, args.seq, args.steps, device)
    print(f"float32 (baseline) {fp32:10.1f} tokens/s")
    bf16 = run(args.shape, "bfloat16", args.batch, args.seq, args.steps, device)
    print(f"bfloat16 autocast  {bf16:10.1f} tokens/s   ratio bf16/fp32 = {bf16 / fp32:.2f}x")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
