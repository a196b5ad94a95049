"""Write benchmarks/gsm8k_lengths.json: each GSM8K train row's prompt, response and answer-span token counts.

    GSM8K_DIR=../shared/data/gsm8k python benchmarks/gsm8k_lengths.py

Counted with the project's own encoding (`r1_zero_v1`, SmolLM2-135M's tokenizer, app/train/sft_data.py), so
gpu_check can build batches shaped like the study's on a machine without the dataset or the hub. Qwen's
tokenizer splits numbers into digits: its responses run a few per cent longer.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from transformers import AutoTokenizer

    from app.inputs.gsm8k import select_train
    from app.inputs.models import embedded_tokenizer_dir
    from app.inputs.prompts import R1_ZERO_V1, answer_span_start, render_prompt, render_target
    from app.train.sft_data import encode_example

    tok = AutoTokenizer.from_pretrained(embedded_tokenizer_dir())
    rows = select_train(os.environ.get("GSM8K_DIR", str(REPO.parent / "shared/data/gsm8k")), "full", 0)
    out: dict[str, list[int]] = {"prompt": [], "response": [], "answer": []}
    for row in rows:
        target = render_target(R1_ZERO_V1, row.answer, row.gold)
        prompt = render_prompt(R1_ZERO_V1, row.question)
        start = answer_span_start(R1_ZERO_V1, target)
        full = encode_example(tok, row.id, prompt, target, start, "response")
        span = encode_example(tok, row.id, prompt, target, start, "answer_only")
        out["response"].append(full.n_supervised)
        out["prompt"].append(len(full.input_ids) - full.n_supervised)
        out["answer"].append(span.n_supervised)
    meta = {"rows": len(rows), "template": "r1_zero_v1", "tokenizer": "SmolLM2-135M-Instruct"}
    path = REPO / "benchmarks" / "gsm8k_lengths.json"
    path.write_text(json.dumps({"meta": meta, **out}, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(rows)} rows")


if __name__ == "__main__":
    main()
