"""Run directories: atomic writes, status per stage, manifest, locking, name containment, audit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.env.fingerprint import audit, diff_fingerprints, fingerprint, image_verdict
from app.errors import UserError
from app.rundir.manifest import sealed_stage
from app.rundir.run_dir import RunDir, atomic_write_bytes, hash_tree, open_run, safe_child

REPO = Path(__file__).resolve().parents[2]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_run_name_cannot_escape_root(tmp_path):
    with pytest.raises(UserError, match="escapes"):
        safe_child(tmp_path, "../x")
    with pytest.raises(UserError, match="escapes"):
        safe_child(tmp_path, "a/b")
    assert safe_child(tmp_path, "ok-1234").parent == tmp_path.resolve()


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


def test_lock_refuses_a_second_holder(tmp_path):
    held = open_run(tmp_path, "r", "ef" * 32, "{}")  # noqa: F841 - keeps the lock
    other = RunDir(tmp_path / ("r-" + "ef" * 4))
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from app.rundir.run_dir import RunDir; "
        f"RunDir({str(other.path)!r}).lock()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0 and "in use by another process" in out.stderr


def test_spec_mismatch_is_refused(tmp_path):
    run = open_run(tmp_path, "r", "12" * 32, '{"a": 1}')
    run.unlock()
    with pytest.raises(UserError, match="differs from the spec"):
        open_run(tmp_path, "r", "12" * 32, '{"a": 2}')


def test_audit_names_a_changed_byte(tmp_path):
    run = open_run(tmp_path, "r", "34" * 32, "{}")
    with sealed_stage(run, "train", ["train"]):
        run.write_text("weights.bin", "0123456789")
        run.write_json("env.json", {"train": fingerprint()})
    problems, env = audit(run.path)
    assert problems == [] and env[0] == "train image: same packages, other image"
    data = bytearray(run.file("weights.bin").read_bytes())
    data[3] ^= 1
    run.file("weights.bin").write_bytes(bytes(data))
    out = subprocess.run(
        [sys.executable, "-m", "app", "audit", str(run.path)], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 1 and "file weights.bin: sha256 differs" in out.stderr


def test_hash_tree_skips_status_and_resume(tmp_path):
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / "model.pt").write_text("x")
    (tmp_path / "status.json").write_text("{}")
    (tmp_path / "a.txt").write_text("a")
    assert list(hash_tree(tmp_path)) == ["a.txt"]


def test_fingerprint_fields_and_diff(monkeypatch):
    fp = fingerprint()
    for key in ("python", "os", "cpu", "packages", "pip_freeze_sha256", "git", "lockfile", "image", "determinism_env"):
        assert key in fp
    assert fp["packages"]["torch"] and any(p.startswith("pydantic==") for p in fp["pip_freeze"])
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    monkeypatch.setenv("REPRO_IMAGE_ID", "sha256:abc")
    other = fingerprint()
    assert "env determinism_env.CUBLAS_WORKSPACE_CONFIG: None -> ':16:8'" in diff_fingerprints(
        {**fp, "determinism_env": {**fp["determinism_env"], "CUBLAS_WORKSPACE_CONFIG": None}}, other
    )
    assert image_verdict(other, other) == "same image"
    assert image_verdict(fp, other) == "same packages, other image"
    assert image_verdict({**fp, "pip_freeze_sha256": "x"}, other) == "different packages"


def test_fingerprint_cli_is_json():
    out = subprocess.run(
        [sys.executable, "-m", "app", "fingerprint"], capture_output=True, text=True, cwd=REPO, env={**os.environ}
    )
    assert out.returncode == 0 and json.loads(out.stdout)["python"]


def test_atomic_write_respects_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "x", b"1")
    finally:
        os.umask(old)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o644
