"""The eval stage's core: prompts → generate in fixed chunks → grade → predictions.jsonl + metrics.

predictions.jsonl is appended one chunk at a time, so an interrupted eval resumes at the first
missing chunk; chunk boundaries are fixed by index, so batches (and vLLM outputs) do not change.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from app.errors import UserError, one_line
from app.eval.grading import RATES, STATUSES, answer_position, canonical_gold, grade, think_length
from app.eval.metrics import summarize
from app.rundir.jsonl import read_jsonl
from app.rundir.layout import COUNT, NUMBER, STR, Either, Leaf, Rec, problem
from app.rundir.run_dir import append_bytes
from app.spec.run_spec import RunSpec


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def make_record(
    index: int, row_id: str, prompt_hash: str, gold: str, text: str, n_tokens: int, finish_reason: str, stop_reason=None
) -> dict:
    """One predictions.jsonl line: raw output, parses, status and length facts."""
    g = grade(text, gold, finish_reason)
    return {
        "index": index,
        "id": row_id,
        "prompt_sha256": prompt_hash,
        "gold": canonical_gold(gold),
        "output": text,
        "finish_reason": finish_reason,
        "stop_reason": stop_reason,
        "n_tokens": n_tokens,
        "strict": g.strict,
        "diagnostic": g.diagnostic,
        "status": g.status,
        "strict_correct": g.strict_correct,
        "diagnostic_correct": g.diagnostic_correct,
        "think_chars": think_length(text),
        "answer_pos": answer_position(text),
    }


# The fields grading and the metrics read, when present (read_predictions' `required` says which must be).
TOKENS = Leaf("a token count", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53)
PREDICTION = Rec(
    optional={
        "id": STR,
        "output": STR,
        "gold": Either((STR, NUMBER)),
        "finish_reason": STR,
        "index": COUNT,
        "prompt_sha256": STR,
        "n_tokens": TOKENS,
    }
)


def read_predictions(
    path: Path, required=("id", "output", "gold", "finish_reason"), torn_tail: bool = False
) -> list[dict]:
    """Read a predictions file; any bad line is an error naming it, except that a resuming eval
    (`torn_tail`) drops a torn last line left by a kill."""
    records = read_jsonl(path, torn_tail)
    for lineno, rec in enumerate(records, start=1):  # no line was skipped, so the index is the line
        missing = [k for k in required if k not in rec]
        if missing:
            raise UserError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        wrong = problem(rec, PREDICTION, "<line>")
        if wrong:  # a field of the wrong type would crash grading or the metrics later
            raise UserError(one_line(f"{path}:{lineno}: {wrong.removeprefix('<line>.')}"))
    return records


def regrade(records: list[dict]) -> list[dict]:
    """Grade saved outputs again with the current grader (no generation)."""
    return [
        make_record(
            r.get("index", i),
            r["id"],
            r.get("prompt_sha256", ""),
            str(r["gold"]),
            r["output"],
            r.get("n_tokens", 0),
            r["finish_reason"],
            r.get("stop_reason"),
        )
        for i, r in enumerate(records)
    ]


def pending_chunks(n: int, chunk: int, done: set[int]) -> list[list[int]]:
    """Fixed chunks of indices that still have a missing prediction."""
    chunks = [list(range(s, min(n, s + chunk))) for s in range(0, n, chunk)]
    return [c for c in chunks if not set(c) <= done]


def load_existing(pred_path: Path, prompts: list[dict]) -> dict[int, dict]:
    """Predictions an interrupted eval already wrote, checked against these prompts (torn tail dropped)."""
    existing = {r["index"]: r for r in read_predictions(pred_path, torn_tail=True)}
    for r in existing.values():
        if r["index"] >= len(prompts) or r["prompt_sha256"] != prompts[r["index"]]["prompt_sha256"]:
            raise UserError(f"{pred_path}: line for {r['id']} does not match this eval's prompts")
    _rewrite(pred_path, [existing[i] for i in sorted(existing)])
    return existing


def generate_missing(gen, prompts: list[dict], pred_path: Path, chunk: int, existing: dict, on_chunk=None) -> int:
    """Generate every missing prediction, appending each finished chunk; returns new generated tokens."""
    new_tokens = 0
    for idxs in pending_chunks(len(prompts), chunk, set(existing)):
        outs = gen.generate([prompts[i]["ids"] for i in idxs])
        new = [
            make_record(
                i,
                prompts[i]["id"],
                prompts[i]["prompt_sha256"],
                prompts[i]["gold"],
                o.text,
                o.n_tokens,
                o.finish_reason,
                o.stop_reason,
            )
            for i, o in zip(idxs, outs)
            if i not in existing
        ]
        append_bytes(pred_path, "".join(json.dumps(r) + "\n" for r in new).encode())
        new_tokens += sum(r["n_tokens"] for r in new)
        if on_chunk:
            on_chunk(new)
    return new_tokens


def _rewrite(path: Path, records: list[dict]) -> None:
    """Drop a torn tail before appending again."""
    from app.rundir.run_dir import atomic_write_bytes

    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in records).encode())


def finalize(pred_path: Path, n_expected: int, extra: dict) -> tuple[list[dict], dict]:
    """Sort predictions by index, check completeness, compute eval metrics."""
    records = sorted(read_predictions(pred_path), key=lambda r: r["index"])
    if len(records) != n_expected or [r["index"] for r in records] != list(range(n_expected)):
        raise UserError(f"{pred_path}: {len(records)} predictions, expected {n_expected}")
    _rewrite(pred_path, records)
    return records, {**summarize(records), **extra}


def build_prompts(tokenizer, template, rows: list) -> list[dict]:
    """Prompt text hash and token ids per row, tokenised exactly as in training (no special tokens)."""
    from app.inputs.prompts import render_prompt

    out = []
    for row in rows:
        text = render_prompt(template, row.question)
        out.append(
            {
                "id": row.id,
                "gold": row.gold,
                "prompt_sha256": prompt_sha256(text),
                "ids": tokenizer(text, add_special_tokens=False)["input_ids"],
            }
        )
    return out


def run_eval(
    spec: RunSpec,
    model_path: str,
    pred_path: Path,
    progress: bool,
    journal=None,
    determinism: dict | None = None,
    on_prompts=None,
) -> tuple[list[dict], dict]:
    """The eval stage's core: the spec's rows as prompt ids, its backend, generation, grading, metrics.

    `journal` and `determinism` come from the stage: the manifest's log of predictions.jsonl (PartialLog)
    and the numeric settings it applied (recorded in eval_metrics.json)."""
    from transformers import AutoTokenizer

    from app.eval.generate import GenSettings, open_generator
    from app.inputs.gsm8k import select_eval
    from app.inputs.models import model_source
    from app.inputs.prompts import get_template
    from app.inputs.remote_code import allowed

    rows = select_eval(spec.data.source, spec.data.eval_split, spec.data.eval_limit)
    m, trust = spec.model, allowed(spec)  # a spec read from a run directory may not run shipped code
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=m.revision, trust_remote_code=trust)
    prompts = build_prompts(tokenizer, get_template(spec.prompt.template), rows)
    if on_prompts is not None:
        on_prompts(len(prompts))
    e = spec.eval
    max_len = max(len(p["ids"]) for p in prompts) + e.max_new_tokens
    cfg = GenSettings(m.dtype, e.max_new_tokens, e.stop, spec.seed, max_len, m.revision, trust, device=spec.device)
    with open_generator(e.backend, model_path, cfg) as gen:
        versions = gen.versions
        chunk = submit_chunk(e.batch_size, versions)
        timing = timed_generation(gen, prompts, pred_path, chunk, progress, journal)
    extra = {
        **timing,
        **({"submit_chunk": chunk} if chunk != e.batch_size else {}),
        "engine": versions,
        "max_new_tokens": e.max_new_tokens,
        "stop": list(e.stop),
        "determinism": determinism,
        "model_source": model_source(spec.model.id, model_path, spec.model.revision),
    }
    return finalize(pred_path, len(prompts), extra)


ENGINE_CHUNK = 512  # prompts per engine call where batch-invariant kernels make chunking irrelevant to outputs


def submit_chunk(batch_size: int, engine: dict) -> int:
    """Prompts per generation call (and resume point). With batch-invariant kernels the engine gets
    large chunks to schedule freely (outputs do not depend on the batch); elsewhere `eval.batch_size`."""
    return max(batch_size, ENGINE_CHUNK) if engine.get("batch_invariant") else batch_size


def timed_generation(gen, prompts: list[dict], pred_path: Path, chunk: int, progress: bool, journal=None) -> dict:
    """Run generation with a progress bar; returns wall time and throughput of this session.

    `journal` (app/rundir/manifest.py PartialLog) keeps only the recorded prefix of an earlier attempt's file and
    records the file after every chunk, so a resumed eval trusts nothing it cannot verify."""
    from app.progress import Reporter

    if journal is not None:
        journal.trim()
    existing = load_existing(pred_path, prompts)
    if journal is not None:
        journal.record()
    t0 = time.time()
    bar = Reporter("eval", len(prompts), len(existing), unit="prompt", enabled=progress)
    seen = {"done": len(existing), "tokens": 0, "new": 0, "correct": 0}

    def advance(new: list[dict]) -> None:
        if journal is not None:
            journal.record()
        seen["done"] += len(new)
        seen["new"] += len(new)
        seen["tokens"] += sum(r["n_tokens"] for r in new)
        seen["correct"] += sum(r["strict_correct"] for r in new)
        bar.update(seen["done"], seen["tokens"], f"strict {seen['correct']}/{seen['new']}")

    new_tokens = generate_missing(gen, prompts, pred_path, chunk, existing, advance)
    bar.close()
    wall = time.time() - t0
    return {
        "wall_s": wall,
        "generated_tokens": new_tokens,
        "tokens_per_s": new_tokens / wall if wall > 0 else None,
        "resumed_with": len(existing),
    }


def samples_by_status(records: list[dict], per_status: int = 5) -> dict[str, list[dict]]:
    """Up to `per_status` records of each status (first ones, by index)."""
    out: dict[str, list[dict]] = {}
    for status in STATUSES:
        out[status] = [r for r in records if r["status"] == status][:per_status]
    return out


def print_summary(records: list[dict], metrics: dict, per_status: int = 5) -> None:
    """Headline metrics and a few generations per status on the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    lo, hi = metrics["strict_ci95"]
    console.print(
        f"[bold]strict {metrics['strict_accuracy']:.3f}[/] (95% CI {lo:.3f}–{hi:.3f}, n={metrics['n']})  "
        f"diagnostic {metrics['diagnostic_accuracy']:.3f}  "
        + "  ".join(f"{r.label} {metrics[r.key]:.3f}" for r in RATES)
    )
    table = Table("status", "id", "gold", "strict", "diag", "output (tail)", show_lines=False)
    for status, recs in samples_by_status(records, per_status).items():
        for r in recs:
            tail = r["output"][-90:].replace("\n", " ")
            shown = ["–" if r[k] is None else str(r[k]) for k in ("strict", "diagnostic")]  # – : nothing parsed
            table.add_row(status, r["id"], r["gold"], *shown, tail)
    console.print(table)
