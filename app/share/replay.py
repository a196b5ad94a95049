"""`repro replay`: re-execute a recorded run from its own spec.json into a fresh directory and compare.

The replay refuses to start when the data on this machine differs from the run's recorded data
fingerprint, runs the chosen stages exactly as `repro train` / `repro eval` would, then compares
every hash the original recorded (checkpoint included, even when a published run omitted it) and
lists the environment differences that might explain any mismatch.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import UserError, one_line
from app.rundir.layout import DATA_JSON, ENV_JSON, SPEC_JSON, read_run_json, stage_of
from app.rundir.manifest import read_manifest, sealed_stage
from app.rundir.paths import is_link, refuse_special
from app.rundir.run_dir import refuse_symlinks
from app.share.publish import recorded_hashes
from app.share.replay_check import FileResult, compare_runs
from app.share.replay_promise import (
    VERDICT_HEAD,
    Machine,
    Promise,
    current_machine,
    expectation_line,
    promises,
    recorded_machine,
    verdict_kind,
)
from app.spec.run_spec import RunSpec, load_spec

LOCATION_KEYS = {"source"}  # data.json: where the data was read from, not what it is


@dataclass
class Replay:
    src: Path
    dest: Path
    files: list[FileResult]
    env: list[str]
    promises: dict[str, Promise] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return all(f.ok for f in self.files)


def pick_stages(spec: RunSpec, stage: str) -> list[str]:
    if stage not in ("train", "eval", "all"):
        raise UserError(f"--stage: {stage!r} is not one of train, eval, all")
    if stage == "train" and spec.train is None:
        raise UserError(f"{spec.name}: the spec has no train section; replay --stage eval or all")
    if stage == "all":
        return ["train", "eval"] if spec.train else ["eval"]
    return [stage]


def check_data(spec: RunSpec, src: Path) -> None:
    """Refuse to replay when the data here is not the data the run recorded.

    Only what the run recorded is compared: a key the fingerprint gained later (e.g. `source_kind`)
    is absent from an older run's data.json, and that says nothing about the data."""
    from app.launch.stages import spec_data_fingerprint

    recorded_path = src / DATA_JSON
    if not recorded_path.is_file():
        raise UserError(f"{recorded_path}: not found (the run recorded no data fingerprint)")
    recorded, now = read_run_json(recorded_path), spec_data_fingerprint(spec)
    keys = sorted(k for k in recorded if k not in LOCATION_KEYS and recorded[k] != now.get(k))
    if keys:
        raise UserError(f"{recorded_path}: the data here differs from the recorded fingerprint ({', '.join(keys)})")


def adopt_training(src: Path, spec: RunSpec, out: Path, manifest: dict) -> None:
    """For an eval-only replay of a trained run: the original's verified training outputs, as its train stage."""
    from app.launch.stages import open_spec_run, required_stages
    from app.rundir.run_dir import sha256_file

    omitted = [rel for rel in manifest.get("omitted", {}) if stage_of(rel) == "train"]
    if omitted:
        raise UserError(f"{src}: {omitted[0]} was omitted when publishing; replay --stage all to rebuild it")
    files = [rel for rel in manifest["files"] if stage_of(rel) == "train"]
    bad = [rel for rel in files if not (src / rel).is_file() or sha256_file(src / rel) != manifest["files"][rel]]
    if bad:
        raise UserError(f"{src / bad[0]}: missing or does not match the manifest")
    run = open_spec_run(spec, out)
    try:
        with sealed_stage(run, "train", required_stages(spec)):
            for rel in files:
                run.file(rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, run.file(rel))
            run.write_json(ENV_JSON, {"train": read_run_json(src / ENV_JSON)["train"]})
    finally:
        run.unlock()


def execute(spec: RunSpec, src: Path, out: Path, stages: list[str], manifest: dict, progress: bool) -> None:
    from app.launch.stages import eval_stage, run_stages, train_stage

    if stages == ["train", "eval"]:
        run_stages(spec, out, progress=progress)
    elif stages == ["train"]:
        train_stage(spec, out, resume=False, progress=progress)
    else:
        if spec.train is not None:
            adopt_training(src, spec, out, manifest)
        eval_stage(spec, out, progress=progress)


def env_differences(src: Path, dest: Path, stages: list[str]) -> list[str]:
    from app.env.fingerprint import diff_fingerprints, image_verdict, latest_env

    if not (src / ENV_JSON).is_file():
        return [f"env: the original recorded no {ENV_JSON}"]
    old, new = read_run_json(src / ENV_JSON), read_run_json(dest / ENV_JSON)
    lines = []
    for stage in stages:
        a, b = latest_env(old, stage), latest_env(new, stage)
        lines.append(f"{stage} image: {image_verdict(a, b)}")
        lines += [f"{stage} {line}" for line in diff_fingerprints(a, b)]
    return lines


def this_machine(spec: RunSpec) -> Machine:
    """This machine as the replay will run it (the spec's numerics profile applied)."""
    from app.env.fingerprint import cpu_name, gpu_info

    gpus = tuple(str(g.get("name")) for g in gpu_info())
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    avx2 = "avx2" in flags.split()
    return current_machine(cpu_name(), platform.machine(), gpus, spec.numerics, dict(os.environ), avx2)


def expect(spec: RunSpec, src: Path, stages: list[str]) -> dict[str, Promise]:
    """Per replayed stage, whether byte identity is promised on this machine (read from the run's env.json)."""
    from app.env.fingerprint import latest_env

    envs = read_run_json(src / ENV_JSON) if (src / ENV_JSON).is_file() else {}
    envs = envs if isinstance(envs, dict) else {}
    recorded = {s: recorded_machine(latest_env(envs, s)) for s in stages if latest_env(envs, s)}
    return promises(stages, spec.eval.backend, recorded, this_machine(spec))


def replay(
    run_dir: Path, out: Path, stage: str = "all", progress: bool = False, trust_remote_code: bool = False, log=print
) -> Replay:
    """Re-execute `run_dir` from its spec.json into `out` and compare every recorded hash.

    The run is a stranger's: it may hold no symlink, its manifest may name only plain relative paths
    (app/rundir/paths.py), and its spec's trust_remote_code counts only with `trust_remote_code`."""
    from app.inputs.remote_code import stored_spec
    from app.launch.stages import run_name

    src = Path(run_dir)
    refuse_symlinks(src)  # before reading anything from it: a link could read or write elsewhere
    refuse_special(src)
    spec = load_spec(src / SPEC_JSON)
    manifest = read_manifest(src, strict=True)
    stages = pick_stages(spec, stage)
    dest = Path(out) / run_name(spec)
    if dest.exists() or is_link(dest):
        raise UserError(f"{dest}: already exists; replay needs a fresh directory (another --out)")
    check_data(spec, src)
    expected = expect(spec, src, stages)
    log(one_line(expectation_line(expected)))  # before starting: a long replay should not end in a surprise
    with stored_spec(spec, src / SPEC_JSON, trust_remote_code, log):
        execute(spec, src, Path(out), stages, manifest, progress)
    files = compare_runs(src, dest, recorded_hashes(manifest), stages)
    return Replay(src, dest, files, env_differences(src, dest, stages), expected)


def summary_lines(result: Replay) -> list[str]:
    """One line per compared file, the environment differences, then the verdict."""
    lines = [f"  {f.verdict:<9} {f.rel}" + (f": {f.detail}" if f.detail else "") for f in result.files]
    lines += [f"  env {line}" for line in result.env]
    bad = [f.rel for f in result.files if not f.ok]
    if bad:
        head = VERDICT_HEAD[verdict_kind([stage_of(rel) for rel in bad], result.promises)]
        lines.append(f"{head} {result.src} -> {result.dest}: {len(bad)} file(s): {', '.join(bad)}")
    elif any(f.verdict == "regraded" for f in result.files):
        lines.append(
            f"REPLAY identical outputs {result.src} -> {result.dest} "
            "(the original was graded by an older grader; compared after regrading it)"
        )
    else:
        set_aside = [f.rel for f in result.files if f.verdict == "same"]
        note = f"; timing/path fields set aside in {', '.join(set_aside)}" if set_aside else ""
        lines.append(f"REPLAY byte-identical {result.src} -> {result.dest}: {len(result.files)} files{note}")
    return lines
