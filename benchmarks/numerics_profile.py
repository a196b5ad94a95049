"""What the portable numerics profile costs, and whether its caps change the numbers on this CPU.

    python benchmarks/numerics_profile.py                          # tiny llama + SmolLM2-135M shape, 2 rounds
    python benchmarks/numerics_profile.py --shapes smollm2-135m --rounds 3 --bits

Each variant runs in a fresh process (the variables act only when torch loads), alternating
native/portable round by round so a busy machine slows both alike. A child trains random weights
(seeded, the real configuration) with the project's loss and optimizer on fixed random batches and
prints tokens/s, every step's loss as a float hex and the sha256 of the trained weights: equal = equal
bits. `--bits` adds one
variable at a time (ATen cap, oneDNN cap, MKL branch) to show which of them moves the bits here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ONE_AT_A_TIME = {
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl_compatible": {"MKL_CBWR": "COMPATIBLE"},
}


def child(variant: str, shape: str, batch: int, seq: int, steps: int) -> dict:
    """Runs in the fresh process: apply the variant, then import torch and train `steps` steps."""
    sys.path.insert(0, str(REPO))
    from app.env import numerics_profile

    if variant in ONE_AT_A_TIME:
        os.environ.update(ONE_AT_A_TIME[variant])
    else:
        numerics_profile.apply(variant)
    import torch
    from transformers import AutoModelForCausalLM

    from app.inputs.random_init import model_config
    from app.train.loop import make_optimizer, optimizer_step, window_loss

    torch.manual_seed(0)
    config = model_config(shape)
    model = AutoModelForCausalLM.from_config(config).train()
    opt = make_optimizer(model, 1e-4, 0.0)
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    losses, t0 = [], 0.0
    for i in range(steps + 1):  # step 0 warms kernels and allocators up and is not timed
        if i == 1:
            t0 = time.perf_counter()
        loss = window_loss(model, data, batch * seq, torch.device("cpu"), "float32")
        loss.backward()
        optimizer_step(model, opt, 1.0)
        losses.append(float(loss).hex())
    weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters()))
    return {
        "tokens_per_s": batch * seq * steps / (time.perf_counter() - t0),
        "losses": losses,
        "weights": weights.hexdigest()[:16],
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def spawn(variant: str, shape: str, args) -> dict:
    code = f"import json, sys; sys.path.insert(0, {str(REPO)!r}); from benchmarks.numerics_profile import child; "
    code += f"print(json.dumps(child({variant!r}, {shape!r}, {args.batch}, {args.seq}, {args.steps})))"
    clean = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="tiny-llama,smollm2-135m")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--bits", action="store_true", help="also one variable at a time (bits only)")
    args = ap.parse_args()
    print(f"cpu={cpu_name()} batch={args.batch} seq={args.seq} steps={args.steps} rounds={args.rounds}")
    for shape in args.shapes.split(","):
        runs: dict[str, list[dict]] = {"native": [], "portable": []}
        for _ in range(args.rounds):
            for variant in runs:
                runs[variant].append(spawn(variant, shape, args))
        for variant, results in runs.items():
            tps = ", ".join(f"{r['tokens_per_s']:.1f}" for r in results)
            r = results[0]
            print(f"{shape:<13} {variant:<9} {r['capability']:<7} threads={r['threads']} tokens/s [{tps}]")
            print(f"{'':<13} {'':<9} weights {r['weights']} losses {' '.join(r['losses'])}")
        best = {v: max(r["tokens_per_s"] for r in rs) for v, rs in runs.items()}
        same = bits(runs["native"][0]) == bits(runs["portable"][0])
        repeat = all(bits(r) == bits(rs[0]) for rs in runs.values() for r in rs)
        print(
            f"{shape:<13} portable/native = {best['portable'] / best['native']:.2f} (best of {args.rounds}); "
            f"weights+losses {'EQUAL' if same else 'DIFFER'} native vs portable; each variant repeats: {repeat}"
        )
        if args.bits:
            for variant in ONE_AT_A_TIME:
                r = spawn(variant, shape, args)
                moved = "same bits as native" if bits(r) == bits(runs["native"][0]) else "bits move"
                print(f"{shape:<13} {variant:<15} {moved}: weights {r['weights']} losses {' '.join(r['losses'])}")


def bits(result: dict) -> tuple:
    return result["weights"], tuple(result["losses"])


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
