"""`repro export lm-eval`: a run's evaluation in lm-evaluation-harness's output layout, for the tools that read it.

Writes OUT/<run>/results_<T>.json and OUT/<run>/samples_<task>_<T>.jsonl as lm-eval's EvaluationTracker
does (lm_eval/loggers/evaluation_tracker.py, save_results_aggregated / save_results_samples): the
results keyed `exact_match,strict-match` (our strict grader) and `exact_match,flexible-extract` (the
diagnostic one) with their `_stderr` (sample standard deviation / √n, as lm-eval's mean_stderr), and
one sample record per question and filter in lm-eval's evaluator shape, `arguments` holding the prompt
text. The prompt is rendered from the run's template and GSM8K row and must hash to the recorded
`prompt_sha256` (predictions.jsonl itself is never changed). T is the eval's finish time in lm-eval's
form, so exporting again writes the same bytes. Needs neither torch nor lm-eval.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime
from pathlib import Path

from app.env.fingerprint import latest_env
from app.errors import UserError
from app.eval.evaluate import prompt_sha256, read_predictions
from app.inputs.gsm8k import FULL_SIZES, HUB_DATASET, select_eval
from app.inputs.prompts import Template, get_template, render_prompt
from app.rundir.layout import (
    CHECKPOINT_DIR,
    DATA_JSON,
    ENV_JSON,
    EVAL_METRICS_JSON,
    PREDICTIONS_JSONL,
    SPEC_JSON,
    STATUS_JSON,
    read_run_json,
)
from app.rundir.manifest import read_manifest
from app.rundir.run_dir import atomic_write_bytes
from app.rundir.verify import verify_reads, warn
from app.spec.run_spec import RunSpec, load_spec

EXPORTED = (SPEC_JSON, PREDICTIONS_JSONL, EVAL_METRICS_JSON, ENV_JSON, DATA_JSON)
METRIC = "exact_match"
# lm-eval filter name → (the predictions.jsonl field it takes, the field saying it is correct)
FILTERS = {"strict-match": ("strict", "strict_correct"), "flexible-extract": ("diagnostic", "diagnostic_correct")}
INVALID = "[invalid]"  # what lm-eval's regex filter yields when nothing matches


def hash_string(text: str) -> str:
    """lm_eval.utils.hash_string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sanitize_model_name(name: str) -> str:
    """lm_eval.utils.sanitize_model_name: the results folder of a model."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def mean_stderr(values: list[float]) -> float | str:
    """lm-eval's mean_stderr: sample standard deviation / √n ("N/A" under two items, as lm-eval reports it)."""
    n = len(values)
    if n < 2:
        return "N/A"
    mu = sum(values) / n
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (n - 1)) / math.sqrt(n)


def task_name(spec: RunSpec) -> str:
    """Not lm-eval's `gsm8k` (5-shot, its own prompt): named for our prompt so tools never mix the two."""
    return f"gsm8k_{spec.prompt.template}"


def gen_kwargs(spec: RunSpec) -> dict:
    return {
        "until": list(spec.eval.stop),
        "max_gen_toks": spec.eval.max_new_tokens,
        "do_sample": False,
        "temperature": 0.0,
    }


def prompts(spec: RunSpec, records: list[dict], where: Path) -> list[tuple[dict, str]]:
    """(GSM8K row as lm-eval's `doc`, prompt text) per record, each prompt checked against its recorded hash."""
    template: Template = get_template(spec.prompt.template)
    rows = select_eval(spec.data.source, spec.data.eval_split, spec.data.eval_limit)
    out = []
    for pos, r in enumerate(records):
        i = r.get("index", pos)
        row = rows[i] if i < len(rows) else None
        text = render_prompt(template, row.question) if row else ""
        if row is None or row.id != r["id"] or prompt_sha256(text) != r.get("prompt_sha256"):
            raise UserError(
                f"{where}: index {i}: the prompt rendered from {template.id} and GSM8K row "
                f"{row.id if row else '(none)'} does not match the recorded prompt_sha256 (other data or template?)"
            )
        out.append(({"question": row.question, "answer": row.answer}, text))
    return out


def samples(spec: RunSpec, records: list[dict], docs: list[tuple[dict, str]]) -> list[dict]:
    """lm-eval's logged samples: every question under one filter, then under the next (its evaluator's order)."""
    kwargs = gen_kwargs(spec)
    out = []
    for name, (field, correct) in FILTERS.items():
        for pos, (r, (doc, prompt)) in enumerate(zip(records, docs)):
            target = str(r["gold"])
            doc_json = json.dumps(doc, indent=2, ensure_ascii=False)
            out.append(
                {
                    "doc_id": r.get("index", pos),
                    "doc": doc,
                    "target": target,
                    "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": kwargs}},
                    "resps": [[r["output"]]],
                    "filtered_resps": [INVALID if r.get(field) is None else str(r[field])],
                    "filter": name,
                    "metrics": [METRIC],
                    "doc_hash": hash_string(doc_json),
                    "prompt_hash": hash_string(prompt),
                    "target_hash": hash_string(target),
                    METRIC: 1.0 if r.get(correct) else 0.0,
                }
            )
    return out


def task_results(task: str, logged: list[dict]) -> dict:
    """results[task]: the alias, then each filter's mean and stderr under lm-eval's `metric,filter` keys."""
    out: dict = {"alias": task}
    for name in FILTERS:
        values = [s[METRIC] for s in logged if s["filter"] == name]
        out[f"{METRIC},{name}"] = sum(values) / len(values)
        out[f"{METRIC}_stderr,{name}"] = mean_stderr(values)
    return out


def task_config(spec: RunSpec, task: str, metrics: dict, data: dict) -> dict:
    """configs[task]: the task as lm-eval's TaskConfig would describe it (what zeno and W&B readers use)."""
    template = get_template(spec.prompt.template)
    hub = spec.data.source.partition("@")[0] == HUB_DATASET
    grader = metrics.get("grader_version", "")
    return {
        "task": task,
        "dataset_path": HUB_DATASET if hub else spec.data.source,
        "dataset_name": "main",
        "test_split": spec.data.eval_split,
        "doc_to_text": template.prompt.replace("{question}", "{{question}}"),
        "doc_to_target": "{{answer.split('####')[-1].strip()}}",
        "description": "",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "num_fewshot": 0,
        "metric_list": [{"metric": METRIC, "aggregation": "mean", "higher_is_better": True}],
        "output_type": "generate_until",
        "generation_kwargs": gen_kwargs(spec),
        "repeats": 1,
        "filter_list": [
            {"name": name, "filter": [{"function": f"repro_{field}", "grader": grader}]}
            for name, (field, _) in FILTERS.items()
        ],
        "should_decontaminate": False,
        "metadata": {
            "version": version(grader),
            "grader_version": grader,
            "prompt_template": template.id,
            "prompt_template_sha256": template.sha256,
            "eval_hash": metrics.get("eval_hash"),
            "eval_rows_sha256": data.get("eval_rows_sha256"),
        },
    }


def version(grader: str) -> float:
    """lm-eval versions a task by number: the grader's (`strict-v2` → 2.0)."""
    digits = re.search(r"(\d+)$", grader)
    return float(digits.group(1)) if digits else 0.0


def eval_times(run: Path) -> tuple[str, float | None]:
    """(the eval's finish time as lm-eval names its files — `isoformat()` with `:` → `-` —, its start as
    a Unix time, lm-eval's `date`), from status.json."""
    stage = read_run_json(run / STATUS_JSON, missing_ok=True).get("stages", {}).get("eval", {})
    finished, started = stage.get("finished_at"), stage.get("started_at")
    if not finished:
        raise UserError(f"{run / STATUS_JSON}: no finish time of the eval stage (is the eval complete?)")
    start = datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp() if started else None
    return finished.removesuffix("Z").replace(":", "-"), start


def model_config(run: Path, spec: RunSpec, metrics: dict, env: dict) -> tuple[dict, dict]:
    """(results["config"], the EvaluationTracker's general config) for the evaluated model."""
    m, e = spec.model, spec.eval
    pretrained = f"{run.name}/{CHECKPOINT_DIR}" if spec.train is not None else m.id
    args = f"pretrained={pretrained},dtype={m.dtype}" + (f",revision={m.revision}" if m.revision else "")
    backend = metrics.get("engine", {}).get("backend", e.backend)
    fp = latest_env(env, "eval")
    config = {
        "model": backend,
        "model_args": args,
        "batch_size": e.batch_size,
        "batch_sizes": [],
        "device": "cuda" if fp.get("gpus") else "cpu",
        "use_cache": None,
        "limit": spec.data.eval_limit,
        "bootstrap_iters": 0,
        "gen_kwargs": gen_kwargs(spec),
        "random_seed": spec.seed,
        "numpy_seed": spec.seed,
        "torch_seed": spec.seed,
        "fewshot_seed": None,
    }
    wall = metrics.get("wall_s")
    tracker = {
        "model_source": backend,
        "model_name": run.name,
        "model_name_sanitized": sanitize_model_name(run.name),
        "system_instruction": None,
        "system_instruction_sha": None,
        "fewshot_as_multiturn": False,
        "chat_template": None,
        "chat_template_sha": None,
        "start_time": None,
        "end_time": None,
        "total_evaluation_time_seconds": None if wall is None else str(wall),
    }
    return config, tracker


def results_document(
    run: Path, spec: RunSpec, logged: list[dict], metrics: dict, env: dict, data: dict, date: float | None
) -> dict:
    """The results_<T>.json object, keys in lm-eval's order (simple_evaluate, then the tracker's additions)."""
    task = task_name(spec)
    config, tracker = model_config(run, spec, metrics, env)
    fp = latest_env(env, "eval")
    commit = (fp.get("git") or {}).get("commit")
    doc = {
        "results": {task: task_results(task, logged)},
        "group_subtasks": {task: []},
        "configs": {task: task_config(spec, task, metrics, data)},
        "versions": {task: version(metrics.get("grader_version", ""))},
        "n-shot": {task: 0},
        "higher_is_better": {task: {METRIC: True}},
        "n-samples": {task: {"original": FULL_SIZES[spec.data.eval_split], "effective": len(logged) // len(FILTERS)}},
        "config": config,
        "git_hash": commit[:7] if commit else None,
        "date": date,
        "transformers_version": (fp.get("packages") or {}).get("transformers"),
        "task_hashes": {
            task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in logged))
        },
    }
    return doc | tracker


def export(run: Path, out: Path, allow_unverified: bool = False, log=warn) -> list[Path]:
    """Write OUT/<run>/results_<T>.json and samples_<task>_<T>.jsonl; returns their paths. Everything is
    read and checked (manifest, prompt hashes) before anything is written."""
    run = Path(run)
    read_manifest(run, strict=True)
    verify_reads(run, EXPORTED, allow_unverified, log)
    if not (run / PREDICTIONS_JSONL).is_file():
        raise UserError(f"{run}: no {PREDICTIONS_JSONL} (run `repro eval` first)")
    spec = load_spec(run / SPEC_JSON)
    records = sorted(read_predictions(run / PREDICTIONS_JSONL), key=lambda r: r.get("index", 0))
    metrics = read_run_json(run / EVAL_METRICS_JSON)
    env, data = read_run_json(run / ENV_JSON, missing_ok=True), read_run_json(run / DATA_JSON, missing_ok=True)
    logged = samples(spec, records, prompts(spec, records, run / PREDICTIONS_JSONL))
    (stamp, date), folder = eval_times(run), out / sanitize_model_name(run.name)
    results = folder / f"results_{stamp}.json"
    sample_file = folder / f"samples_{task_name(spec)}_{stamp}.jsonl"
    document = results_document(run, spec, logged, metrics, env, data, date)
    atomic_write_bytes(results, json.dumps(document, indent=2, ensure_ascii=False).encode())
    lines = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in logged)
    atomic_write_bytes(sample_file, lines.encode())
    return [results, sample_file]
