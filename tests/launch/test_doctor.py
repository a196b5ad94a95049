"""`repro doctor`: each check against the real machine, and the misses it must name with their fix."""

import re

from app.env.lockfiles import active_lock
from app.launch.doctor import (
    EMBEDDED_CHECKPOINT_BYTES,
    Check,
    check_disk,
    check_gsm8k,
    check_lock,
    driver_check,
    planned_bytes,
    render,
)
from app.spec.run_spec import RunSpec
from tests.helpers import repro


def test_doctor_prints_a_checklist_and_names_the_fix_for_missing_data(tmp_path, real_gsm8k):
    ok = repro("doctor", env={"GSM8K_DIR": str(real_gsm8k)})
    lines = {ln.split()[1]: ln for ln in ok.stdout.splitlines()}
    assert {"python", "lock", "gsm8k", "model", "docker", "gpu", "disk"} <= set(lines), ok.stdout
    assert lines["python"].startswith("[ok]") and lines["lock"].startswith("[ok]")  # this venv is the lock
    missing = repro("doctor", env={"GSM8K_DIR": str(tmp_path)})
    gsm = next(ln for ln in missing.stdout.splitlines() if " gsm8k " in ln)
    assert missing.returncode == 1 and gsm.startswith("[!!]")
    assert "missing train.jsonl, test.jsonl" in gsm and "fix: set GSM8K_DIR" in gsm


def test_gpu_driver_against_the_images_cuda_floor():
    assert driver_check("580.95.05", 13).ok and driver_check("580.65.06", 13).ok
    old = driver_check("570.124.06", 13)
    assert old.ok is False and "driver >= 580.65.06" in old.fix
    assert driver_check("535.104.05", 12).ok and driver_check("570.124.06", None).ok  # no CUDA images: no floor
    assert driver_check("N/A", 13).ok is False


def test_disk_need_grows_with_planned_training_runs(tmp_path, tiny_model_dir):
    base = RunSpec(name="b")
    trained = RunSpec(name="t", model={"id": str(tiny_model_dir)}, train={"max_steps": 1})
    size = (tiny_model_dir / "model.safetensors").stat().st_size
    assert planned_bytes([base, trained]) - planned_bytes([base]) == 4 * size
    embedded = RunSpec(name="e", train={"epochs": 1})
    assert planned_bytes([embedded]) - planned_bytes([]) == 4 * EMBEDDED_CHECKPOINT_BYTES
    detail = check_disk(tmp_path / "not" / "yet", [trained]).detail  # measured where the runs will go
    assert re.search(rf"GiB free at {tmp_path}, \d+\.\d GiB needed for 1 planned run", detail)


def test_gsm8k_check_and_render(tmp_path):
    assert check_gsm8k("openai/gsm8k").ok is None
    (tmp_path / "train.jsonl").write_text("{}\n")
    miss = check_gsm8k(str(tmp_path))
    assert miss.ok is False and miss.detail.endswith("missing test.jsonl")
    text = render([miss, Check("x", True, "fine", "never shown")])
    assert text.splitlines()[0].startswith("[!!] gsm8k") and "-> fix: set GSM8K_DIR" in text
    assert "never shown" not in text


def test_inside_an_image_the_image_lock_is_checked(tmp_path, monkeypatch):
    lock = tmp_path / "lock.txt"
    header = "# input-sha256: x\n# variant train-cpu: extras train; python 3.11; x86_64-manylinux_2_28.\n"
    lock.write_text(header + "numpy==0.0.1 \\\n    --hash=sha256:00\n")
    monkeypatch.setenv("REPRO_LOCKFILE", str(lock))
    check = check_lock(active_lock())
    assert check.ok is False and check.detail.startswith("1 pins differ: numpy: locked 0.0.1, installed ")
