"""`repro export mlflow`: each run directory as one MLflow run, for people who browse results there.

The spec becomes params, each training log step and every numeric eval/train metric becomes a
metric, the manifest's hashes become tags, and the small files and figures become artifacts.
Exporting is idempotent: a run already exported with the same manifest is left alone; one whose
manifest changed replaces its earlier export. mlflow is an optional extra (`pip install
'repro-gsm8k[mlflow]'`); nothing here is imported by the other commands.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from app.errors import UserError
from app.rundir.jsonl import read_jsonl
from app.rundir.layout import (
    DATA_JSON,
    ENV_JSON,
    EVAL_METRICS_JSON,
    MANIFEST_JSON,
    PREDICTIONS_JSONL,
    SPEC_JSON,
    TRAIN_CURVES_PNG,
    TRAIN_LOG_JSONL,
    TRAIN_METRICS_JSON,
    read_run_json,
)
from app.rundir.manifest import read_manifest
from app.rundir.paths import inside
from app.rundir.run_dir import sha256_file
from app.rundir.verify import verify_reads, warn

DEFAULT_URI = "sqlite:///mlflow.db"
INSTALL_HINT = "repro export mlflow needs the mlflow extra: pip install 'repro-gsm8k[mlflow]'"
ARTIFACTS = (
    SPEC_JSON,
    DATA_JSON,
    ENV_JSON,
    MANIFEST_JSON,
    TRAIN_METRICS_JSON,
    EVAL_METRICS_JSON,
    TRAIN_CURVES_PNG,
    PREDICTIONS_JSONL,
)
# Every run file the export reads, verified against manifest.json (itself the root of trust).
EXPORTED = (*(n for n in ARTIFACTS if n != MANIFEST_JSON), TRAIN_LOG_JSONL)
LOG_METRICS = ("loss", "lr", "grad_norm", "supervised_tokens", "tokens", "supervised_ratio", "padding_fraction")
REPORT_FILES = ("report.md", "report.html", "report.json")
BATCH = 500  # below MLflow's per-call limit of 1000 metrics


def client_for(uri: str):
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return MlflowClient(tracking_uri=uri)


def flatten(obj: dict, prefix: str = "") -> dict:
    """{'train.lr': 2e-05, …}: nested dicts joined with dots; lists of numbers indexed."""
    out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            out.update({f"{name}.{i}": v for i, v in enumerate(value)})
        else:
            out[name] = value
    return out


def spec_params(run: Path) -> dict[str, str]:
    """The recorded spec as MLflow params (strings; null, lists and text as JSON)."""
    spec = read_run_json(run / SPEC_JSON)
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in flatten(spec).items()}


def numeric(values: dict, prefix: str) -> dict[str, float]:
    flat = flatten(values)
    return {
        f"{prefix}{k}": float(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def run_metrics(run: Path) -> list[tuple[str, float, int]]:
    """(key, value, step): the training curve per optimizer step, then the final train and eval metrics."""
    out = []
    for row in read_jsonl(run / TRAIN_LOG_JSONL, torn_tail=False):
        out += [(k, float(row[k]), int(row["step"])) for k in LOG_METRICS if row.get(k) is not None]
    for name, prefix in ((TRAIN_METRICS_JSON, "train."), (EVAL_METRICS_JSON, "eval.")):
        if (run / name).is_file():
            out += [(k, v, 0) for k, v in sorted(numeric(read_run_json(run / name), prefix).items())]
    return out


def run_tags(run: Path) -> dict[str, str]:
    """Where the run came from and the sha256 of every recorded file (omitted ones included)."""
    manifest = read_manifest(run, strict=True)
    tags = {
        "repro.run_dir": run.resolve().name,
        "repro.manifest_sha256": sha256_file(run / MANIFEST_JSON),
        "repro.spec_sha256": sha256_file(run / SPEC_JSON),
    }
    tags.update({f"sha256.{rel}": sha for rel, sha in manifest["files"].items()})
    tags.update({f"sha256.{rel}": e["sha256"] for rel, e in manifest.get("omitted", {}).items()})
    return tags


def experiment_id(client, name: str, uri: str) -> str:
    """The experiment's id, created on first use (artifacts beside a SQLite file, not in the cwd)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    parsed = urlparse(uri)
    location = None
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/:memory:"):
        db = Path(parsed.path[1:] if uri.startswith("sqlite:///") else parsed.path)
        location = (db.resolve().parent / "mlruns").as_uri()
    return client.create_experiment(name, artifact_location=location)


def find_export(client, exp_id: str, key: str) -> list:
    """The experiment's runs whose `repro.run_dir` tag is exactly `key`. Compared here, never put into
    a filter string: a directory name is the bundle author's text (a quote, a `%`, an `OR`)."""
    found, token = [], None
    while True:
        page = client.search_runs([exp_id], max_results=1000, page_token=token)
        found += [r for r in page if r.data.tags.get("repro.run_dir") == key]
        token = page.token
        if not token:
            return found


def log_all(client, run_id: str, params: dict, metrics: list, tags: dict) -> None:
    from mlflow.entities import Metric, Param, RunTag

    p = [Param(k, v) for k, v in sorted(params.items())]
    t = [RunTag(k, v) for k, v in sorted(tags.items())]
    m = [Metric(k, v, 0, step) for k, v, step in metrics]
    for i in range(0, max(len(p), len(t), len(m)), 100):
        client.log_batch(run_id, params=p[i : i + 100], tags=t[i : i + 100])
    for i in range(0, len(m), BATCH):
        client.log_batch(run_id, metrics=m[i : i + BATCH])


def export_run(client, exp_id: str, run: Path) -> tuple[str, bool]:
    """(MLflow run id, whether it was (re)created) for one run directory."""
    tags = run_tags(run)
    existing = find_export(client, exp_id, tags["repro.run_dir"])
    if existing and existing[0].data.tags.get("repro.manifest_sha256") == tags["repro.manifest_sha256"]:
        return existing[0].info.run_id, False
    for old in existing:  # the run changed since it was exported: replace, never duplicate
        client.delete_run(old.info.run_id)
    created = client.create_run(exp_id, run_name=tags["repro.run_dir"])
    run_id = created.info.run_id
    with ended(client, run_id):
        log_all(client, run_id, spec_params(run), run_metrics(run), tags)
        for name in ARTIFACTS:
            if (run / name).is_file():
                client.log_artifact(run_id, str(run / name))
    return run_id, True


@contextlib.contextmanager
def ended(client, run_id: str) -> Iterator[None]:
    """End the MLflow run FINISHED, or FAILED when the export stops part-way (never left RUNNING)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # keep the first error
            client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)


def export_report(client, exp_id: str, report: Path) -> tuple[str, bool]:
    """The study report as its own MLflow run (`report.*` and its PNGs as artifacts)."""
    if not (report / "report.json").is_file():
        raise UserError(f"{report}: no report.json (make one with `repro report`)")
    key, sha = f"report:{report.resolve().name}", sha256_file(report / "report.json")
    existing = find_export(client, exp_id, key)
    if existing and existing[0].data.tags.get("repro.manifest_sha256") == sha:
        return existing[0].info.run_id, False
    for old in existing:
        client.delete_run(old.info.run_id)
    run_id = client.create_run(exp_id, run_name=key, tags={"repro.run_dir": key, "repro.manifest_sha256": sha})
    run_id = run_id.info.run_id
    with ended(client, run_id):
        for path in [report / n for n in REPORT_FILES if (report / n).is_file()] + sorted(report.glob("*.png")):
            client.log_artifact(run_id, str(inside(report, path.name, f"{report} (report)")))
    return run_id, True


def export(
    run_dirs: list[Path],
    uri: str = DEFAULT_URI,
    experiment: str = "repro",
    report: Path | None = None,
    allow_unverified: bool = False,
    log=warn,
) -> list[tuple[Path, str, bool]]:
    """Export every run (and optionally the report); returns (path, MLflow run id, created).

    Every run is checked first (a run directory, no links, each exported file as its manifest
    records it; app/rundir/verify.py), so nothing is written for a refused one."""
    for run in run_dirs:
        read_manifest(Path(run), strict=True)
        verify_reads(Path(run), EXPORTED, allow_unverified, log)
    client = client_for(uri)
    exp_id = experiment_id(client, experiment, uri)
    done = [(Path(r), *export_run(client, exp_id, Path(r))) for r in run_dirs]
    if report is not None:
        done.append((Path(report), *export_report(client, exp_id, Path(report))))
    return done
