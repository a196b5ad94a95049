"""`repro doctor`: each check against the real machine, and the misses it must name with their fix."""

import re
import shutil

import torch

from app.env.lockfiles import active_lock
from app.launch.doctor import (
    EMBEDDED_CHECKPOINT_BYTES,
    Check,
    check_devices,
    check_disk,
    check_gsm8k,
    check_lock,
    check_model,
    driver_check,
    planned_bytes,
    render,
)
from app.launch.plan import KNOWN
from app.spec.run_spec import RunSpec
from tests.helpers import REPO, repro
from tests.hub_server import FakeHub, directory_files, gsm8k_repo


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


def test_gsm8k_check_and_render(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    hub = check_gsm8k("openai/gsm8k")  # stages never fetch: unfetched hub data is a miss
    assert hub.ok is False and "openai/gsm8k (revision main) missing: not fetched" in hub.detail
    assert hub.fix.startswith("repro fetch SPEC")
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


def test_doctor_on_a_gpu_study_spec_checks_its_own_model_hub_data_and_device(tmp_path):
    env = {"REPRO_CACHE": str(tmp_path / "cache"), "CUDA_VISIBLE_DEVICES": ""}  # no GPU, nothing fetched
    out = repro("doctor", str(REPO / "specs" / "B_1024.json"), "--runs-dir", str(tmp_path / "runs"), env=env)
    assert out.returncode == 1, out.stdout
    lines = {ln.split()[1]: ln for ln in out.stdout.splitlines()}
    assert (
        lines["model"].startswith("[!!] model") and "Qwen/Qwen2.5-Math-1.5B (revision main) missing" in lines["model"]
    )
    assert "smollm2" not in out.stdout  # the cache of a model the spec does not use is not its check
    assert lines["gsm8k"].startswith("[!!]") and "openai/gsm8k (revision main) missing" in lines["gsm8k"]
    assert lines["device"].startswith("[!!] device") and "cuda needed by B_1024, none found: torch " in lines["device"]
    assert "fix: run it on a GPU machine" in lines["device"]
    params = KNOWN["Qwen/Qwen2.5-Math-1.5B"].params  # disk: the spec's model, not the embedded one
    assert f"{(2 * 2**30 + 16 * params) / 2**30:.1f} GiB needed for 1 planned run" in lines["disk"]


def test_hub_model_and_gsm8k_are_ok_once_fetched(tmp_path, monkeypatch, tiny_model_dir, mini_gsm8k):
    cache = tmp_path / "cache"
    monkeypatch.setenv("REPRO_CACHE", str(cache))
    spec = tmp_path / "hub.json"
    spec.write_text('{"name": "h", "model": {"id": "tiny-org/tiny"}, "data": {"source": "openai/gsm8k"}}')
    assert check_model("tiny-org/tiny", None, tmp_path, set()).ok is False
    with FakeHub() as hub:
        hub.add("model", "tiny-org/tiny", directory_files(tiny_model_dir))
        hub.add("dataset", "openai/gsm8k", directory_files(gsm8k_repo(mini_gsm8k, tmp_path / "hub_gsm8k")))
        env = {"REPRO_CACHE": str(cache), "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
        assert repro("fetch", str(spec), env=env).returncode == 0
        commits = {k[1]: repo.refs["main"] for k, repo in hub.repos.items()}
    model = check_model("tiny-org/tiny", None, tmp_path, set())
    assert model.ok is True and f"fetched: commit {commits['tiny-org/tiny'][:12]}" in model.detail
    data = check_gsm8k("openai/gsm8k")
    assert data.ok is True and f"commit {commits['openai/gsm8k'][:12]}" in data.detail


def test_a_run_model_is_checked_against_the_runs_root(tiny_run, tmp_path, tiny_model_dir):
    runs = tmp_path / "runs"
    missing = check_model("run:tiny", None, runs, set())
    assert missing.ok is False and "missing: no run of tiny" in missing.detail and "run spec tiny first" in missing.fix
    assert check_model("run:tiny", None, runs, {"tiny"}).ok is None  # planned in the same batch
    shutil.copytree(tiny_run, runs / tiny_run.name)
    assert check_model("run:tiny", None, runs, set()).ok is True
    assert check_model(f"run:{tiny_run.name}", None, runs, set()).ok is True  # the pinned form
    (runs / "other-0123abcd").mkdir()
    unfinished = check_model("run:other", None, runs, set())
    assert unfinished.ok is False and "not complete" in unfinished.detail
    assert check_model(str(tiny_model_dir), None, runs, set()).ok is True
    assert check_model(str(tmp_path / "nowhere"), None, runs, set()).ok is False


def test_device_lines_follow_the_spec_device():
    auto, cpu = RunSpec(name="a"), RunSpec(name="c", device="cpu", eval={"backend": "hf"})
    checks = {c.detail.split()[0]: c for c in check_devices([auto, cpu])}
    assert checks["auto"].ok is None and checks["cpu"].ok is True
    cuda = check_devices([RunSpec(name=f"g{i}", device="cuda", eval={"backend": "hf"}) for i in range(5)])[0]
    assert "cuda for g0, g1, g2 +2 more" in cuda.detail or "cuda needed by g0, g1, g2 +2 more" in cuda.detail
    has_gpu = torch.version.cuda is not None and torch.cuda.device_count() > 0
    assert cuda.ok is has_gpu
