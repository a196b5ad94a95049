"""`repro status`: one row per run directory — what a user watches during a sweep.

Reads only files the stages already write (status.json, train_log.jsonl, predictions.jsonl,
eval_metrics.json) plus Slurm's queue when `squeue` exists. Pure apart from that call.
"""

from __future__ import annotations

import calendar
import time
from pathlib import Path

from app.errors import one_line
from app.launch.slurm import queue_states, submissions
from app.rundir.layout import EVAL_METRICS_JSON, PREDICTIONS_JSONL, SPEC_JSON, TRAIN_LOG_JSONL
from app.rundir.run_dir import RunDir


def count_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.endswith(b"\n"))


def seconds(stamp: str | None) -> float | None:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) if stamp else None


def stage_wall(entry: dict, now: float) -> float:
    """Seconds of the stage's latest attempt (up to now while it runs)."""
    start = seconds(entry.get("started_at"))
    if start is None:
        return 0.0
    end = seconds(entry.get("finished_at")) if entry.get("state") != "running" else None
    return (end or now) - start


def run_row(run: RunDir, jobs: dict[str, str], queued: dict[str, dict], now: float) -> dict:
    """Everything `repro status` shows about one run, as plain values."""
    status = run.status()
    stages = status.get("stages", {})
    metrics = run.read_json(EVAL_METRICS_JSON, missing_ok=True)
    train, ev = stages.get("train", {}), stages.get("eval", {})
    job = (status.get("slurm") or {}).get("job_id")
    submitted = queued.get(str(run.path.resolve()), {})
    if submitted.get("job_id") and submitted.get("submitted_at", "") > status.get("updated_at", ""):
        job = submitted["job_id"]  # resubmitted since this run last started
    errors = [e["error"] for e in (train, ev) if e.get("error")]
    return {
        "run": run.path.name,
        "state": status["state"],
        "train": train.get("state") if "train" in status.get("required", ["train"]) else "-",
        "train_step": count_lines(run.file(TRAIN_LOG_JSONL)),
        "train_total": train.get("total_steps"),
        "eval": ev.get("state"),
        "eval_done": metrics.get("n") or count_lines(run.file(PREDICTIONS_JSONL)),
        "eval_total": ev.get("total_prompts") or metrics.get("n"),
        "strict_accuracy": metrics.get("strict_accuracy"),
        "unclosed_rate": metrics.get("unclosed_rate"),
        "slurm_job": job,
        "slurm_state": jobs.get(job) if job else None,
        "wall_s": sum(stage_wall(e, now) for e in (train, ev)),
        "error": errors[-1] if errors else None,
    }


def collect(runs_root: Path) -> list[dict]:
    """Rows for every run directory under `runs_root` (or for `runs_root` itself if it is one)."""
    root = Path(runs_root)
    dirs = [root] if (root / SPEC_JSON).is_file() else sorted(p for p in root.glob("*/") if (p / SPEC_JSON).is_file())
    parent = root.parent if dirs == [root] else root
    jobs, queued, now = queue_states(), submissions(parent.resolve()), time.time()
    rows = [run_row(RunDir(d), jobs, queued, now) for d in dirs]
    if dirs != [root]:  # submitted tasks that have not started yet have no run directory
        started = {str(d.resolve()) for d in dirs}
        rows += [waiting_row(rec, jobs) for key, rec in sorted(queued.items()) if key not in started]
    return rows


def waiting_row(rec: dict, jobs: dict[str, str]) -> dict:
    """A submitted task whose run directory does not exist yet."""
    row = dict.fromkeys(("train", "train_total", "eval", "eval_total", "strict_accuracy", "unclosed_rate", "error"))
    job = rec["job_id"]
    row.update(run=Path(rec["run_dir"]).name, state="submitted", train_step=0, eval_done=0, wall_s=0.0)
    return {**row, "slurm_job": job, "slurm_state": jobs.get(job, "gone")}


def progress_cell(state: str | None, done: int, total: int | None) -> str:
    if state in (None, "-") or not (done or total):
        return state or "-"
    return f"{state} {done}/{total}" if total else f"{state} {done}"


def fmt_wall(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def table(rows: list[dict]) -> str:
    """Fixed-width plain text, readable in a terminal and in a log file."""
    head = ["run", "state", "train", "eval", "strict", "unclosed", "slurm", "wall", "last error"]
    cells = [head]
    for r in rows:
        pct = [f"{r[k]:.3f}" if r[k] is not None else "-" for k in ("strict_accuracy", "unclosed_rate")]
        job = f"{r['slurm_job']} {r['slurm_state'] or ''}".strip() if r["slurm_job"] else "-"
        train = "-" if r["train"] == "-" else progress_cell(r["train"] or "new", r["train_step"], r["train_total"])
        ev = progress_cell(r["eval"] or "new", r["eval_done"], r["eval_total"])
        row = [r["run"], r["state"], train, ev, *pct, job, fmt_wall(r["wall_s"]), (r["error"] or "")[:60]]
        cells.append([one_line(c) for c in row])  # text from status.json: one printable line per run
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def summary(rows: list[dict]) -> str:
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    return f"{len(rows)} run(s): " + ", ".join(f"{n} {one_line(s)}" for s, n in sorted(states.items()))
