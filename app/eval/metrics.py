"""Metrics over graded samples: accuracy with Wilson intervals, failure rates, lengths, paired tests.

Pure: numpy only.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from app.eval.grading import GRADER_VERSION, RATES, STATUSES

LENGTH_BUCKETS = ((0, 128), (128, 256), (256, 512), (512, 1024), (1024, 10**9))


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for k successes in n trials ((0, 1) when n == 0)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def percentile(values: list[int], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def eval_hash(prompt_hashes: list[str]) -> str:
    """One hash for the exact set and order of prompts evaluated."""
    return hashlib.sha256("\n".join(prompt_hashes).encode()).hexdigest()


def length_buckets(records: list[dict]) -> list[dict]:
    """Strict accuracy by generated-token bucket."""
    out = []
    for lo, hi in LENGTH_BUCKETS:
        inside = [r for r in records if lo <= r["n_tokens"] < hi]
        if inside:
            k = sum(r["status"] == "correct" for r in inside)
            out.append({"min_tokens": lo, "max_tokens": hi, "n": len(inside), "strict_accuracy": k / len(inside)})
    return out


def summarize(records: list[dict]) -> dict:
    """Every documented eval metric from per-sample records (see docs/run-directory.md: eval_metrics.json)."""
    n = len(records)
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    k = counts["correct"]
    lengths = [r["n_tokens"] for r in records]
    thinks = [r["think_chars"] for r in records]
    answer_pos = [r["answer_pos"] for r in records if r["answer_pos"] is not None]
    rate = (lambda c: c / n) if n else (lambda c: 0.0)
    return {
        "n": n,
        "strict_correct": k,
        "strict_accuracy": rate(k),
        "strict_ci95": list(wilson_interval(k, n)),
        "diagnostic_accuracy": rate(sum(bool(r["diagnostic_correct"]) for r in records)),
        "status_counts": counts,
        **{r.key: rate(sum(counts[s] for s in r.statuses)) for r in RATES},
        "gen_tokens_p50": percentile(lengths, 50),
        "gen_tokens_p90": percentile(lengths, 90),
        "gen_tokens_max": max(lengths) if lengths else None,
        "think_chars_p50": percentile(thinks, 50),
        "answer_pos_p50": percentile(answer_pos, 50),
        "answer_tag_rate": rate(len(answer_pos)),
        "accuracy_by_length": length_buckets(records),
        "eval_hash": eval_hash([r["prompt_sha256"] for r in records]),
        "grader_version": GRADER_VERSION,
    }


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (A only) and c (B only)."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2**m
    return min(1.0, 2 * tail)


def paired_bootstrap(a: list[bool], b: list[bool], n_boot: int = 10000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of mean(b) - mean(a) over paired items."""
    x = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if x.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def paired_compare(a: dict[str, bool], b: dict[str, bool]) -> dict:
    """Compare two runs' per-item correctness on the items both evaluated."""
    ids = sorted(set(a) & set(b))
    xa, xb = [a[i] for i in ids], [b[i] for i in ids]
    only_a = sum(p and not q for p, q in zip(xa, xb))
    only_b = sum(q and not p for p, q in zip(xa, xb))
    n = len(ids)
    acc_a = sum(xa) / n if n else 0.0
    acc_b = sum(xb) / n if n else 0.0
    return {
        "n_paired": n,
        "accuracy_a": acc_a,
        "accuracy_b": acc_b,
        "difference": acc_b - acc_a,
        "only_a_correct": only_a,
        "only_b_correct": only_b,
        "mcnemar_p": mcnemar_exact(only_a, only_b),
        "bootstrap_ci95": list(paired_bootstrap(xa, xb)),
    }
