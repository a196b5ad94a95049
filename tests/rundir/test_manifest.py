"""Chain of custody (app/rundir/manifest.py): a stage seals what it wrote and is marked complete or failed;
a later stage trusts only what the manifest vouches for (a checkpoint, resume state), refuses files no stage
could have written, and seal_write survives a kill. And this module is the only writer of manifest.json: no
other module of app/ passes the manifest's name to a write, and every manifest written while a stage seals, a
rescore rewrites and a publish copies is written from inside it."""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from app.errors import IntegrityError, UserError
from app.launch.stages import train_stage
from app.rundir.layout import MANIFEST_JSON
from app.rundir.manifest import (
    custody_problems,
    read_manifest,
    seal_write,
    sealed_stage,
    trusted_resume,
    verify_run,
)
from app.rundir.run_dir import RunDir, open_run, sha256_file
from app.spec.run_spec import load_spec
from tests.helpers import repro, snapshot

REPO = Path(__file__).resolve().parents[2]
STUDY_RUN = next((REPO / "docs" / "cpu_study" / "runs").glob("cpu_orig_128-*"))
OWNER = "rundir/manifest.py"
# Calls that create, replace or extend a file.
WRITES = {
    "write_json",
    "write_text",
    "write_bytes",
    "atomic_write_json",
    "atomic_write_bytes",
    "append_bytes",
    "seal_write",
    "seal_json",
    "copy",
    "copy2",
    "copyfile",
    "move",
    "replace",
    "rename",
    "open",
    "dump",
}


def _callee(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def _names_manifest(node: ast.AST) -> bool:
    return any(
        (isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.endswith(MANIFEST_JSON))
        or (isinstance(n, ast.Name) and n.id == "MANIFEST_JSON")
        or (isinstance(n, ast.Attribute) and n.attr == "MANIFEST_JSON")
        for n in ast.walk(node)
    )


def manifest_writes(source: str) -> list[int]:
    """Lines of calls that write a file and name manifest.json (as a path or the call's target)."""
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and _callee(n) in WRITES]
    return sorted(c.lineno for c in calls if any(_names_manifest(a) for a in [c.func, *c.args, *c.keywords]))


def test_no_other_module_writes_the_manifest():
    found = {}
    for path in sorted((REPO / "app").rglob("*.py")):
        rel = path.relative_to(REPO / "app").as_posix()
        lines = manifest_writes(path.read_text())
        if lines:
            found[rel] = lines
    assert set(found) == {OWNER}, f"manifest.json is written outside app/{OWNER}: {found}"


def test_the_scan_sees_a_manifest_write():
    source = (
        'atomic_write_json(dest / "manifest.json", m)\n'
        "run.write_json(MANIFEST_JSON, m)\n"
        "shutil.copy2(src / layout.MANIFEST_JSON, dest)\n"
        "run.read_json(MANIFEST_JSON)\n"
    )
    assert manifest_writes(source) == [1, 2, 3]


@pytest.fixture
def manifest_writers(monkeypatch) -> list[list[str]]:
    """The modules on the stack of every rename onto a manifest.json (atomic writes end in os.replace)."""
    calls: list[list[str]] = []
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == MANIFEST_JSON:
            frame, modules = sys._getframe(1), []
            while frame is not None:
                modules.append(frame.f_globals.get("__name__", "?"))
                frame = frame.f_back
            calls.append(modules)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_every_manifest_written_by_a_stage_a_rescore_or_a_publish_comes_from_the_owner(tmp_path, manifest_writers):
    from app.eval.rescore import rescore_run
    from app.share.publish import publish

    run = RunDir(tmp_path / "staged")
    with sealed_stage(run, "eval", ["eval"]):
        run.write_text("eval_metrics.json", "{}")
    seal_write(run, "data.json", b"{}\n")
    rescored = tmp_path / STUDY_RUN.name
    shutil.copytree(STUDY_RUN, rescored)
    rescore_run(rescored)
    (out := tmp_path / "published").mkdir()
    publish([rescored], out)
    assert read_manifest(run)["files"].keys() == {"eval_metrics.json", "data.json"}
    assert json.loads((out / "runs" / rescored.name / MANIFEST_JSON).read_text())["omitted"]
    assert len(manifest_writers) >= 1 + 2 + 4 + 1  # the stage, a seal, the rescore's two seals, a publish
    assert all("app.rundir.manifest" in modules for modules in manifest_writers)


def flip_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))


def test_stage_marks_complete_with_manifest(tmp_path):
    run = open_run(tmp_path, "r", "ab" * 32, "{}")
    with sealed_stage(run, "train", ["train"]):
        run.write_text("out.txt", "hello")
    status = run.status()
    assert status["state"] == "complete" and status["stages"]["train"]["finished_at"]
    files = json.loads(run.file("manifest.json").read_text())["files"]
    assert set(files) == {"out.txt", "spec.json"}


def test_stage_failure_is_marked_failed(tmp_path):
    run = open_run(tmp_path, "r", "cd" * 32, "{}")
    with pytest.raises(RuntimeError), sealed_stage(run, "eval", ["eval"]):
        raise RuntimeError("engine crashed\nsecond line")
    status = run.status()
    assert status["state"] == "failed"
    assert status["stages"]["eval"]["error"] == "RuntimeError: engine crashed"


def test_unexpected_files_are_refused_only_where_no_stage_is_writing(tmp_path):
    run = open_run(tmp_path, "r", "ab" * 32, "{}")
    with sealed_stage(run, "train", ["train", "eval"]):
        run.write_text("checkpoint/model.bin", "weights")
    run.write_text("predictions.jsonl", '{"index": 0}\n')  # an unfinished eval's output
    assert custody_problems(run) == []
    run.write_text("checkpoint/extra.bin", "planted")
    with pytest.raises(IntegrityError, match=r"checkpoint/extra.bin: not in manifest.json"):
        verify_run(run)


def test_a_completed_stage_never_rehashes_earlier_files(tmp_path):
    run = open_run(tmp_path, "r", "cd" * 32, "{}")
    with sealed_stage(run, "train", ["train", "eval"]):
        run.write_text("a.txt", "original")
    sealed = read_manifest(run)["files"]["a.txt"]
    run.file("a.txt").write_text("changed during the next stage")
    with sealed_stage(run, "eval", ["train", "eval"]):
        run.write_text("b.txt", "new")
    files = read_manifest(run)["files"]
    assert files["a.txt"] == sealed and "b.txt" in files
    assert custody_problems(run) == ["a.txt: sha256 differs from manifest.json"]


def test_seal_write_survives_a_kill_between_manifest_and_file(tmp_path, monkeypatch):
    run = open_run(tmp_path, "r", "ef" * 32, "{}")
    seal_write(run, "env.json", b"first\n")

    def killed(path, data):
        raise KeyboardInterrupt  # the process dies after the manifest named the new hash

    monkeypatch.setattr("app.rundir.manifest.atomic_write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        seal_write(run, "env.json", b"second\n")
    monkeypatch.undo()
    assert run.file("env.json").read_bytes() == b"first\n" and custody_problems(run) == []
    seal_write(run, "env.json", b"third\n")
    assert custody_problems(run) == [] and "sealing" not in read_manifest(run) or not read_manifest(run)["sealing"]
    run.file("env.json").write_bytes(b"first\n")  # the old content is no longer acceptable
    assert custody_problems(run) == ["env.json: sha256 differs from manifest.json"]


@pytest.mark.faults
def test_resume_state_is_verified_and_attempts_are_kept(tiny_spec, tmp_path):
    spec_path = tiny_spec(name="resume", train={"max_steps": 6, "save_every": 2})
    killed = repro(
        "train", str(spec_path), "--runs-dir", str(tmp_path / "a"), "--no-progress", env={"REPRO_FAULT": "train.step:4"}
    )
    assert killed.returncode == -9
    cut = next((tmp_path / "a").iterdir())
    record = read_manifest(RunDir(cut))["resume"]
    assert record["step"] == 4 and record["world_size"] == 1 and record["global_batch"] == 4
    latest = json.loads((cut / "resume/latest.json").read_text())
    with pytest.raises(UserError, match="resuming with 2 process"):
        trusted_resume(RunDir(cut), latest, world_size=2)
    spec = load_spec(spec_path)
    weights = max((cut / "resume/step-000004").iterdir(), key=lambda p: p.stat().st_size).relative_to(cut)
    for name, target in (("b", weights.as_posix()), ("c", "train_log.jsonl")):
        copy = tmp_path / name / cut.name
        shutil.copytree(cut, copy)
        flip_byte(copy / target, at=(copy / target).stat().st_size // 2)  # still parses; only the hash tells
        with pytest.raises(IntegrityError, match=target.split("/")[-1]):
            train_stage(spec, tmp_path / name, resume=True, progress=False)
    # A kill between writing resume/ and recording it: nothing unverified is trusted; training restarts.
    unrecorded = RunDir(Path(shutil.copytree(cut, tmp_path / "d" / cut.name)))
    manifest = read_manifest(unrecorded)
    manifest.pop("resume")
    unrecorded.write_json("manifest.json", manifest)
    # In a fresh process, like the run it is compared with: in-process numerics can differ in the last
    # bit once earlier tests in this process have resized torch's thread pool.
    out = repro("train", str(spec_path), "--runs-dir", str(tmp_path / "d"), "--no-progress", "--resume")
    assert out.returncode == 0 and "restarting from step 0" in out.stderr, out.stderr
    restarted = unrecorded
    assert json.loads(restarted.file("train_metrics.json").read_text())["resumed_from_step"] == 0
    resumed = repro("train", str(spec_path), "--runs-dir", str(tmp_path / "a"), "--no-progress", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    attempts = json.loads((cut / "env.json").read_text())["train"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    for a in attempts:
        assert a["runtime"]["world_size"] == 1 and a["runtime"]["numerics"]["deterministic_algorithms"] is True
        assert a["runtime"]["numerics"]["cuda_matmul_allow_tf32"] is False and "cudnn" in a["runtime"]
    assert "resume" not in read_manifest(RunDir(cut)) and repro("audit", str(cut)).returncode == 0
    losses = [
        [json.loads(ln)["loss"] for ln in d.read_text().splitlines()]
        for d in (cut / "train_log.jsonl", restarted.file("train_log.jsonl"))
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 6
    assert sha256_file(cut / "checkpoint/model.safetensors") == sha256_file(
        restarted.file("checkpoint/model.safetensors")
    )


def test_tampered_checkpoint_between_train_and_eval_is_refused(tiny_spec, tmp_path):
    spec_path = tiny_spec(name="custody", train={"max_steps": 1})
    run = train_stage(load_spec(spec_path), tmp_path, progress=False)
    flip_byte(run.file("checkpoint/model.safetensors"))
    before = snapshot(run.path)
    out = repro("eval", str(spec_path), "--runs-dir", str(tmp_path), "--no-progress")
    assert out.returncode == 1, out.stderr
    assert f"error: {run.file('checkpoint/model.safetensors')}: sha256 differs from manifest.json" in out.stderr
    assert snapshot(run.path) == before  # not re-hashed into a clean manifest, no eval attempt recorded
    audit = repro("audit", str(run.path))
    assert audit.returncode == 1 and "file checkpoint/model.safetensors: sha256 differs" in audit.stderr


def test_restaging_a_published_run_keeps_its_omitted_records(tmp_path):
    run = RunDir(tmp_path)
    run.write_text("spec.json", "{}")
    omitted = {"checkpoint/model.safetensors": {"sha256": "a" * 64, "size": 3, "reason": "left out"}}
    run.write_json("manifest.json", {"files": {}, "omitted": omitted})
    with sealed_stage(run, "eval", ["eval"]):  # e.g. a rescore rewriting metrics in a published run
        run.write_text("eval_metrics.json", "{}")
    manifest = json.loads(run.file("manifest.json").read_text())
    assert manifest["omitted"] == omitted and set(manifest["files"]) == {"spec.json", "eval_metrics.json"}
