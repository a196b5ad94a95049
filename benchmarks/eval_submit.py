"""How `repro eval` hands prompts to vLLM: chunks of `--chunk` (the baseline: the engine never holds more,
and each chunk waits for its slowest answer) against all prompts in one call (what the GPU path does
with chunks of >= 512), on one engine, alternated `--rounds` times in this one process.

    python benchmarks/eval_submit.py [--model smollm2-135m --n 64 --chunk 16 --max-new-tokens 192]

Prints generated tokens/s for each, the ratio whole/chunked, and whether the outputs are byte-identical
(they must be: app/eval/evaluate.submit_chunk relies on it). The smoke spec evaluates 64 prompts with
eval.batch_size 64, so on the CPU its `repro eval` is one call either way: the same code, no slower.
"""

from __future__ import annotations

import argparse
import time

from app.eval.evaluate import build_prompts
from app.eval.generate import GenSettings, open_generator
from app.inputs.gsm8k import select_eval
from app.inputs.models import resolve_model
from app.inputs.prompts import R1_ZERO_V1


def timed(gen, ids: list[list[int]], chunk: int) -> tuple[float, list]:
    t0 = time.time()
    outs = [o for i in range(0, len(ids), chunk) for o in gen.generate(ids[i : i + chunk])]
    return sum(o.n_tokens for o in outs) / (time.time() - t0), [(o.text, o.n_tokens) for o in outs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=16, help="the baseline's prompts per call")
    ap.add_argument("--max-new-tokens", type=int, default=192)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from transformers import AutoTokenizer

    model = resolve_model(args.model)
    prompts = build_prompts(AutoTokenizer.from_pretrained(model), R1_ZERO_V1, select_eval("local", "test", args.n))
    ids = [p["ids"] for p in prompts]
    cfg = GenSettings("float32", args.max_new_tokens, ("</answer>",), 0, 1024)
    speeds: dict[str, list[float]] = {"chunked": [], "whole": []}
    outputs = {}
    with open_generator("vllm", model, cfg) as gen:
        timed(gen, ids[:2], 2)  # warm-up: the first call pays for allocation and kernel selection
        for _ in range(args.rounds):
            for name, chunk in (("chunked", args.chunk), ("whole", len(ids))):
                tps, outputs[name] = timed(gen, ids, chunk)
                speeds[name].append(tps)
    print(f"model={args.model} prompts={args.n} max_new_tokens={args.max_new_tokens} rounds={args.rounds}")
    print(f"chunks of {args.chunk} (baseline) " + " ".join(f"{x:8.1f}" for x in speeds["chunked"]) + " tokens/s")
    print(f"all {args.n} in one call      " + " ".join(f"{x:8.1f}" for x in speeds["whole"]) + " tokens/s")
    print(f"ratio whole/chunked (best of each) = {max(speeds['whole']) / max(speeds['chunked']):.2f}x")
    print(f"identical outputs: {outputs['chunked'] == outputs['whole']}")


if __name__ == "__main__":
    main()
