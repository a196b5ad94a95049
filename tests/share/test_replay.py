"""publish → audit → replay on a tiny trained run (tiny llama, HF backend), and the committed CPU study."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.errors import UserError
from app.rundir.run_dir import sha256_file
from app.share.replay_check import drop, first_record_diff

REPO = Path(__file__).resolve().parents[2]
STUDY_RUNS = sorted((REPO / "docs/cpu_study/runs").iterdir())


def repro(*args: str):
    """The real CLI in this process (torch is imported once for the module, not once per command)."""
    return CliRunner().invoke(app, list(args))


def copy_run(src: Path, dest: Path, **manifest_changes) -> Path:
    """A copy of a run whose manifest has some recorded hashes replaced."""
    shutil.copytree(src, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    for rel, sha in manifest_changes.items():
        section = "omitted" if rel in manifest.get("omitted", {}) else "files"
        if section == "omitted":
            manifest[section][rel]["sha256"] = sha
        else:
            manifest[section][rel] = sha
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def test_every_committed_study_run_audits_clean():
    assert len(STUDY_RUNS) >= 13
    for run in STUDY_RUNS:
        out = repro("audit", str(run), "--verbose")
        assert out.exit_code == 0, (run, out.stderr)
        manifest = json.loads((run / "manifest.json").read_text())
        assert "AUDIT OK" in out.stdout and out.stdout.count("\nomitted ") == len(manifest["omitted"])
        assert out.stdout.startswith(f"AUDIT OK {run}")  # the verdict first
        assert not manifest["omitted"] or f"; {len(manifest['omitted'])} omitted" in out.stdout.splitlines()[0]
        if (run / "train_log.jsonl").is_file():  # trained runs keep the checkpoint's recorded hash
            assert len(manifest["omitted"]["checkpoint/model.safetensors"]["sha256"]) == 64


def test_tampering_with_a_present_file_of_a_published_run_fails(tmp_path):
    run = copy_run(STUDY_RUNS[0], tmp_path / STUDY_RUNS[0].name)
    with (run / "predictions.jsonl").open("a") as fh:
        fh.write("\n")
    out = repro("audit", str(run))
    assert out.exit_code == 1 and "file predictions.jsonl: sha256 differs" in out.stderr


def test_publish_leaves_out_the_checkpoint_and_replay_rebuilds_it(tiny_run, tmp_path):
    out = repro("publish", str(tiny_run), "--out", str(tmp_path / "pub"))
    assert out.exit_code == 0, out.stderr
    published = tmp_path / "pub/runs" / tiny_run.name
    assert not (published / "checkpoint").exists() and (published / "predictions.jsonl").is_file()
    omitted = json.loads((published / "manifest.json").read_text())["omitted"]
    weights = tiny_run / "checkpoint/model.safetensors"
    assert omitted["checkpoint/model.safetensors"] == {
        "sha256": sha256_file(weights),
        "size": weights.stat().st_size,
        "reason": "large file left out when publishing",
    }
    audit = repro("audit", str(published), "--verbose")
    assert audit.exit_code == 0 and "omitted checkpoint/model.safetensors" in audit.stdout
    replayed = repro("replay", str(published), "--out", str(tmp_path / "replay"))
    assert replayed.exit_code == 0, replayed.stdout + replayed.stderr
    assert "REPLAY byte-identical" in replayed.stdout
    assert "REPLAY EXPECT train: byte identity promised (same CPU model" in replayed.stderr  # said before it ran
    assert "identical checkpoint/model.safetensors: matches the recorded sha256 (file omitted)" in replayed.stdout
    assert "same      train_log.jsonl: apart from tokens_per_s, elapsed_s" in replayed.stdout


def test_publish_refuses_a_run_missing_a_recorded_file(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / tiny_run.name)
    (run / "checkpoint/config.json").unlink()
    out = repro("publish", str(run), "--out", str(tmp_path / "pub"))
    assert out.exit_code == 2 and "checkpoint/config.json: missing" in out.stderr
    assert not (tmp_path / "pub/runs" / tiny_run.name).exists()


def test_a_changed_recorded_hash_makes_replay_fail_naming_the_file(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / tiny_run.name, **{"predictions.jsonl": "0" * 64})
    out = repro("replay", str(run), "--out", str(tmp_path / "replay"), "--stage", "eval")
    assert out.exit_code == 1
    assert "differs   predictions.jsonl: the original file does not match its recorded sha256" in out.stdout
    assert "REPLAY DIFFERS where identity was promised" in out.stdout  # same machine: a real difference
    assert out.stdout.strip().endswith("1 file(s): predictions.jsonl")


def test_data_check_compares_what_the_run_recorded(tiny_run, tmp_path):
    from app.rundir.layout import read_run_json
    from app.share.replay import check_data
    from app.spec.run_spec import load_spec

    run = copy_run(tiny_run, tmp_path / tiny_run.name)
    spec = load_spec(run / "spec.json")
    data = read_run_json(run / "data.json")
    del data["source_kind"]  # a run recorded before the fingerprint named its source's kind
    (run / "data.json").write_text(json.dumps(data))
    check_data(spec, run)
    (run / "data.json").write_text(json.dumps({**data, "eval_size": data["eval_size"] + 1}))
    with pytest.raises(UserError, match=r"differs from the recorded fingerprint \(eval_size\)"):
        check_data(spec, run)


def test_replay_refuses_when_the_data_differs(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / tiny_run.name)
    data = json.loads((run / "data.json").read_text())
    data["train_subset_sha256"] = "f" * 64
    (run / "data.json").write_text(json.dumps(data))
    out = repro("replay", str(run), "--out", str(tmp_path / "replay"))
    assert out.exit_code == 2 and "differs from the recorded fingerprint (train_subset_sha256)" in out.stderr
    assert not (tmp_path / "replay").exists()


def test_predictions_from_an_older_grader_are_regraded_before_comparing(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / tiny_run.name)
    metrics = json.loads((run / "eval_metrics.json").read_text())
    metrics["grader_version"] = "strict-v0"
    records = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    records[0]["status"] = "graded-differently"
    (run / "eval_metrics.json").write_text(json.dumps(metrics))
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    manifest = json.loads((run / "manifest.json").read_text())
    for rel in ("eval_metrics.json", "predictions.jsonl"):
        manifest["files"][rel] = sha256_file(run / rel)
    (run / "manifest.json").write_text(json.dumps(manifest))
    out = repro("replay", str(run), "--out", str(tmp_path / "replay"), "--stage", "eval")
    assert out.exit_code == 0, out.stdout + out.stderr
    assert "regraded  predictions.jsonl" in out.stdout and "REPLAY identical outputs" in out.stdout


def test_first_differing_record_is_named():
    a = [{"step": 0, "loss": 1.0, "elapsed_s": 1}, {"step": 1, "loss": 2.0, "elapsed_s": 2}]
    b = [{"step": 0, "loss": 1.0, "elapsed_s": 9}, {"step": 1, "loss": 2.5, "elapsed_s": 9}]
    assert first_record_diff("train_log.jsonl", a, b) == "first differing log step 1 (loss)"
    assert first_record_diff("train_log.jsonl", a, a[:1]) == "2 records recorded, 1 replayed"
    assert drop({"a": {"path": 1, "b": 2}, "c": 3}, ("a.path", "c")) == {"a": {"b": 2}}


def test_a_changed_omitted_checkpoint_hash_fails_a_train_replay(tiny_run, tmp_path):
    from app.share.publish import publish

    (published,) = publish([tiny_run], tmp_path / "pub")
    run = copy_run(published, tmp_path / tiny_run.name, **{"checkpoint/model.safetensors": "1" * 64})
    out = repro("replay", str(run), "--out", str(tmp_path / "replay"), "--stage", "train")
    assert out.exit_code == 1
    assert "differs   checkpoint/model.safetensors: sha256 " in out.stdout and "(file omitted)" in out.stdout
    assert "identical checkpoint/config.json" in out.stdout and "predictions.jsonl" not in out.stdout


def test_fields_only_the_replay_records_are_named_not_counted(tmp_path):
    from app.share.replay_check import compare_content

    old, new = tmp_path / "a.json", tmp_path / "b.json"
    old.write_text(json.dumps({"engine": {"vllm": "1"}, "wall_s": 1}))
    new.write_text(json.dumps({"engine": {"vllm": "1", "batch_invariant": False}, "wall_s": 2}))
    result = compare_content("eval_metrics.json", old, new, None)
    assert result.ok and "fields not recorded originally: engine.batch_invariant" in result.detail
    new.write_text(json.dumps({"engine": {"vllm": "2"}, "wall_s": 1}))
    assert compare_content("eval_metrics.json", old, new, None).detail == "differing keys: engine"


def test_a_rescored_runs_history_is_set_aside(tmp_path):
    from app.share.replay_check import compare_content

    recorded = {"n": 4, "strict_accuracy": 0.25, "rescored": {"from_grader": "strict-v1", "at": "2026-11-29T00:00:00Z"}}
    (tmp_path / "a.json").write_text(json.dumps(recorded))
    (tmp_path / "b.json").write_text(json.dumps({"n": 4, "strict_accuracy": 0.25}))
    same = compare_content("eval_metrics.json", tmp_path / "a.json", tmp_path / "b.json", None)
    assert same.verdict == "same" and "rescored" in same.detail
    (tmp_path / "b.json").write_text(json.dumps({"n": 4, "strict_accuracy": 0.5}))
    assert compare_content("eval_metrics.json", tmp_path / "a.json", tmp_path / "b.json", None).verdict == "differs"
