"""The NVIDIA driver floor: the oldest driver the installed CUDA runtime wheels run on.

CUDA libraries come from pip wheels (nvidia-cuda-runtime…), never from the base image, so the
floor follows the wheels: CUDA 13.x needs a driver >= 580, CUDA 12.x >= 525 (NVIDIA's minor-version
compatibility table). A driver below the floor makes torch quietly fall back to the CPU or fail deep
inside CUDA; `check_driver` says so in one line first. The images' own CUDA major (Dockerfile.train)
gives `repro doctor` the floor before any image is built. Pure: reads package metadata and nvidia-smi.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from app.env.lockfiles import REPO
from app.env.versions import at_least, installed_version, major
from app.errors import UserError

# CUDA major version -> minimum Linux driver (CUDA Compatibility guide, minor-version compatibility).
DRIVER_FLOOR = {12: "525.60.13", 13: "580.65.06"}
# Runtime wheels per CUDA major: CUDA 12 wheels carry a -cu12 suffix, CUDA 13 ones none.
RUNTIME_WHEELS = {"nvidia-cuda-runtime-cu12": 12, "nvidia-cuda-runtime": None}


def cuda_major_of(runtime: str, version: str) -> int:
    """CUDA major of a runtime wheel: fixed by the -cu12 name, else its version's major."""
    return RUNTIME_WHEELS.get(runtime) or major(version)


def installed_cuda() -> tuple[int, str] | None:
    """(CUDA major, 'wheel==version') of the installed runtime wheel; None on CPU-only installs."""
    for name in RUNTIME_WHEELS:
        version = installed_version(name)
        if version is not None:
            return cuda_major_of(name, version), f"{name}=={version}"
    return None


def image_cuda_major() -> int | None:
    """The CUDA major of the images' runtime wheels (`ARG CUDA_MAJOR=13` in Dockerfile.train)."""
    m = re.search(r"ARG CUDA_MAJOR=(\d+)", (REPO / "Dockerfile.train").read_text())
    return int(m.group(1)) if m else None


def driver_version() -> str | None:
    """The NVIDIA driver version nvidia-smi reports (None without a GPU or nvidia-smi)."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.split()
    return lines[0] if out.returncode == 0 and lines else None


def driver_problem(driver: str | None, cuda: tuple[int, str] | None) -> str | None:
    """One line when `driver` is older than the floor of the `cuda` wheels, else None."""
    if driver is None or cuda is None:
        return None
    floor = DRIVER_FLOOR.get(cuda[0])
    if floor is None or at_least(driver, floor):
        return None
    alternative = " or use the CUDA 12 images (make images CUDA=12)" if cuda[0] > 12 else ""
    return (
        f"NVIDIA driver {driver} is older than {floor}, the floor for the CUDA {cuda[0]} libraries "
        f"installed here ({cuda[1]}): upgrade the driver{alternative}"
    )


def check_driver() -> None:
    """Raise UserError naming the driver and the floor when this machine's driver is too old."""
    problem = driver_problem(driver_version(), installed_cuda())
    if problem:
        raise UserError(problem)
