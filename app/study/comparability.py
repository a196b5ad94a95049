"""Which runs may stand side by side in one report: the same evaluation, item for item. Pure.

Runs are compared on: the eval questions (data.json's eval rows hash), the exact prompts (eval
hash, among runs of one prompt template: the hardened-prompt arm changes the prompt by design),
`max_new_tokens` (decode arms raise it by design), stop strings, grader version, generation
engine and versions, and a complete predictions file (as many predictions as `n`).
"""

from __future__ import annotations

DESIGNED = {"max_new_tokens": ("decode",)}  # groups that differ in a field on purpose


def signature(run) -> dict[str, str]:
    """The evaluation facts of one report.Run that must agree across runs, as printable strings."""
    m, data = run.metrics, run.data
    # Runs recorded before batch-invariant kernels existed ran without them.
    engine = {"batch_invariant": False, **(m.get("engine") or {})}
    template = data.get("prompt_template", {}).get("id", "?")
    return {
        "eval questions": str(data.get("eval_rows_sha256", "?"))[:12],
        f"eval hash ({template})": str(m.get("eval_hash", "?"))[:12],
        "max_new_tokens": str(m.get("max_new_tokens")),
        "stop": str(m.get("stop")),
        "grader_version": str(m.get("grader_version")),
        "engine": ", ".join(f"{k}={v}" for k, v in sorted(engine.items())),
    }


def mismatches(runs) -> list[str]:
    """One line per evaluation fact on which the runs disagree, naming the runs of each value."""
    lines = []
    for r in runs:
        if len(r.records) != r.metrics.get("n"):
            lines.append(f"{r.spec.name}: {len(r.records)} predictions but n = {r.metrics.get('n')}")
    fields: dict[str, dict[str, list[str]]] = {}
    for r in runs:
        for key, value in signature(r).items():
            if r.group in DESIGNED.get(key, ()):
                continue
            fields.setdefault(key, {}).setdefault(value, []).append(r.spec.name)
    for key, values in fields.items():
        if len(values) > 1:
            lines.append(f"{key} differs: " + "; ".join(f"{v} ({', '.join(names)})" for v, names in values.items()))
    return lines


def training_mismatches(runs) -> list[str]:
    """A line when trained runs used different process counts, naming the runs of each count.

    Data-parallel training sums gradients in another order on another process count (and without
    `train.global_batch` it also takes bigger steps): such runs are flagged on the report, not refused."""
    counts: dict[int, list[str]] = {}
    for r in runs:
        if r.train_metrics is not None:  # runs recorded before the field existed ran as one process
            counts.setdefault(int(r.train_metrics.get("world_size", 1)), []).append(r.spec.name)
    if len(counts) < 2:
        return []
    groups = "; ".join(f"{n} ({', '.join(names)})" for n, names in sorted(counts.items()))
    return [f"runs trained on different process counts (world size), compared anyway: {groups}"]
