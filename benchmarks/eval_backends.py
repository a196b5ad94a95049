"""Generation throughput: HF `generate` (the baseline) vs vLLM, same model, prompts and limits.

    python benchmarks/eval_backends.py [--model smollm2-135m] [--n 16] [--max-new-tokens 64]

Runs both backends one after the other in this process, prints tokens/s for each, the ratio
vLLM/HF, and how many of the outputs are byte-identical.
"""

from __future__ import annotations

import argparse
import time

from app.eval.evaluate import build_prompts
from app.eval.generate import GenSettings, open_generator
from app.inputs.gsm8k import select_eval
from app.inputs.models import resolve_model
from app.inputs.prompts import R1_ZERO_V1


def measure(backend: str, model: str, prompts: list[dict], cfg: GenSettings) -> tuple[float, list]:
    with open_generator(backend, model, cfg) as gen:
        t0 = time.time()
        outs = gen.generate([p["ids"] for p in prompts])
        wall = time.time() - t0
    return sum(o.n_tokens for o in outs) / wall, outs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    from transformers import AutoTokenizer

    model = resolve_model(args.model)
    prompts = build_prompts(AutoTokenizer.from_pretrained(model), R1_ZERO_V1, select_eval("local", "test", args.n))
    cfg = GenSettings("float32", args.max_new_tokens, ("</answer>",), 0, 1024)
    hf_tps, hf_out = measure("hf", model, prompts, cfg)
    vl_tps, vl_out = measure("vllm", model, prompts, cfg)
    same = sum(a.text == b.text for a, b in zip(hf_out, vl_out))
    print(f"model={args.model} prompts={args.n} max_new_tokens={args.max_new_tokens}")
    print(f"hf   (baseline) {hf_tps:8.1f} generated tokens/s")
    print(f"vllm            {vl_tps:8.1f} generated tokens/s   ratio vllm/hf = {vl_tps / hf_tps:.2f}x")
    print(f"identical outputs: {same}/{args.n}")


if __name__ == "__main__":
    main()
