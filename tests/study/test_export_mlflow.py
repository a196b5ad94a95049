"""`repro export mlflow` against the real MLflow client on a local SQLite store, read back."""

import json
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app
from app.study.export_mlflow import flatten
from tests.helpers import repro

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "docs/cpu_study"


def export(*args: str):
    return CliRunner().invoke(app, ["export", "mlflow", *args])


def test_export_round_trips_and_is_idempotent(tmp_path):
    from mlflow import MlflowClient

    trained, base = next(STUDY.glob("runs/cpu_orig_32-*")), next(STUDY.glob("runs/cpu_base-*"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = export(str(trained), str(base), "--tracking-uri", uri, "--report", str(STUDY))
    assert first.exit_code == 0, first.output
    assert first.stdout.count("EXPORTED") == 3
    again = export(str(trained), "--tracking-uri", uri)
    assert again.exit_code == 0 and again.stdout.startswith("UNCHANGED")

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("repro")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted([trained.name, base.name, "report:cpu_study"])
    run = next(r for r in runs if r.info.run_name == trained.name)
    spec = json.loads((trained / "spec.json").read_text())
    assert run.data.params["train.lr"] == json.dumps(spec["train"]["lr"]) and run.data.params["name"] == spec["name"]
    assert len(run.data.params) == len(flatten(spec))
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(r["step"], r["loss"]) for r in log]
    metrics = json.loads((trained / "eval_metrics.json").read_text())
    assert run.data.metrics["eval.strict_accuracy"] == metrics["strict_accuracy"]
    assert run.data.metrics["eval.status_counts.truncated"] == metrics["status_counts"]["truncated"]
    manifest = json.loads((trained / "manifest.json").read_text())
    assert run.data.tags["sha256.predictions.jsonl"] == manifest["files"]["predictions.jsonl"]
    weights = manifest["omitted"]["checkpoint/model.safetensors"]["sha256"]
    assert run.data.tags["sha256.checkpoint/model.safetensors"] == weights
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"spec.json", "train_curves.png", "predictions.jsonl", "manifest.json"} <= artifacts
    assert (tmp_path / "mlruns").is_dir()  # artifacts beside the SQLite file, not in the working directory


def test_a_changed_run_replaces_its_export(tmp_path):
    import shutil

    from mlflow import MlflowClient

    run = tmp_path / "cpu_base-copy"
    shutil.copytree(next(STUDY.glob("runs/cpu_base-*")), run)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert export(str(run), "--tracking-uri", uri).exit_code == 0
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["published_at"] = "later"
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert export(str(run), "--tracking-uri", uri).stdout.startswith("EXPORTED")
    client = MlflowClient(tracking_uri=uri)
    assert len(client.search_runs([client.get_experiment_by_name("repro").experiment_id])) == 1


def test_missing_extra_is_one_line_saying_what_to_install(tmp_path):
    (tmp_path / "mlflow.py").write_text("raise ImportError('No module named mlflow')\n")  # as if not installed
    out = repro("export", "mlflow", str(STUDY / "runs" / "x"), env={"PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert out.returncode == 2 and "no such run directory" in out.stderr  # run dirs are checked first
    run = next(STUDY.glob("runs/cpu_base-*"))
    out = repro("export", "mlflow", str(run), env={"PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert out.returncode == 2
    assert out.stderr.strip() == "error: repro export mlflow needs the mlflow extra: pip install 'repro-gsm8k[mlflow]'"
