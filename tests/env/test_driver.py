"""The NVIDIA driver floor: derived from the locks' CUDA runtime wheels, stated in image labels and the
docs (docs/images.md), and checked at start-up with one line."""

import re
import stat
from pathlib import Path

import pytest

from app.env.driver import DRIVER_FLOOR, RUNTIME_WHEELS, cuda_major_of, driver_problem, image_cuda_major
from app.env.versions import lock_pins
from tests.helpers import docs_text, repro, services

REPO = Path(__file__).resolve().parents[2]


def test_driver_problem_names_driver_floor_and_way_out():
    cu13 = (13, "nvidia-cuda-runtime==13.2.86")
    line = driver_problem("570.86.15", cu13)
    assert "570.86.15" in line and "580.65.06" in line and "CUDA 12 images" in line and "\n" not in line
    assert driver_problem("580.65.06", cu13) is None and driver_problem("590.1", cu13) is None
    assert driver_problem("535.104.05", (12, "nvidia-cuda-runtime-cu12==12.8.90")) is None
    assert "CUDA 12 images" not in driver_problem("470.1", (12, "nvidia-cuda-runtime-cu12==12.8.90"))
    assert driver_problem(None, cu13) is None and driver_problem("470.1", None) is None  # no GPU / CPU torch


def runtime_pin(lock: str) -> tuple[str, str]:
    pins = lock_pins((REPO / "lockfiles" / lock).read_text())
    name = next(name for name in RUNTIME_WHEELS if name in pins)
    return name, pins[name]


@pytest.mark.parametrize("files", [("compose.yaml",), ("compose.yaml", "compose.cuda12.yaml")])
def test_image_labels_state_the_floor_of_their_lock(files):
    dockerfile_default = re.search(r"^ARG DRIVER_FLOOR=(\S+)", (REPO / "Dockerfile.train").read_text(), re.M)[1]
    docs = docs_text()
    for name, svc in services(*files).items():
        args = svc["build"].get("args", {})
        lock = Path(args.get("LOCKFILE", f"lockfiles/{name}-cuda.txt")).name
        floor = DRIVER_FLOOR[cuda_major_of(*runtime_pin(lock))]
        assert args.get("DRIVER_FLOOR", dockerfile_default) == floor, (files, name)
        assert floor in docs


def test_too_old_driver_stops_training_with_one_line(tiny_spec, tmp_path):
    # A real nvidia-smi stand-in on PATH and the metadata of a CUDA 13 runtime wheel on PYTHONPATH.
    bindir, site = tmp_path / "bin", tmp_path / "site"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 570.86.15\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    dist = site / "nvidia_cuda_runtime-13.2.86.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nvidia-cuda-runtime\nVersion: 13.2.86\n")
    env = {"PATH": f"{bindir}:{__import__('os').environ['PATH']}", "PYTHONPATH": f"{REPO}:{site}"}
    out = repro("train", str(tiny_spec(name="olddriver")), "--runs-dir", str(tmp_path / "runs"), env=env)
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "NVIDIA driver 570.86.15 is older than 580.65.06" in errors[0]
    assert "Traceback" not in out.stderr


def test_the_images_cuda_major_has_a_floor():
    assert image_cuda_major() == 13 and image_cuda_major() in DRIVER_FLOOR
    assert cuda_major_of("nvidia-cuda-runtime", "13.2.86") == 13
    assert cuda_major_of("nvidia-cuda-runtime-cu12", "12.8.90") == 12
