"""Chain of custody: a stage trusts only what manifest.json vouches for. This module is the only
writer of manifest.json (tests/rundir/test_manifest.py keeps it so).

- `sealed_stage` / `update_manifest`: a stage that completes seals every file it wrote.
- `verify_run`: before a stage starts or extends a run directory, every sealed file must still match
  the manifest, and no file may appear that no unfinished stage could have written; otherwise the
  stage stops (IntegrityError, exit 1, naming the file) instead of hashing it into a clean manifest.
- `seal_write`: files rewritten outside a stage's seal (data.json, env.json, a rescore's outputs) name
  their new hash in the manifest before they change, so a kill in between still leaves a directory
  that verifies.
- `record_partial` / `trim_to_trusted`: an append-only file of a running stage (predictions.jsonl)
  is trusted up to the prefix last recorded; a resumed stage cuts the rest and regenerates it.
- `record_resume` / `trusted_resume`: the resumable checkpoint and the train-log prefix it continues.
- `read_manifest`: the one reader; `write_published_manifest`: a published copy's manifest.
Pure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from app.errors import IntegrityError, UserError, WriteFailed
from app.preempt import Interrupted
from app.rundir.layout import (
    DATA_JSON,
    ENV_JSON,
    LOGS_DIR,
    MANIFEST_JSON,
    OPTIONAL_OUTPUTS,
    RESUME_DIR,
    RESUME_LATEST,
    SPEC_JSON,
    STAGE_OUTPUTS,
    STATUS_JSON,
    TRAIN_LOG_JSONL,
    VOLATILE_FILES,
)
from app.rundir.paths import entries, inside, is_link, is_safe_rel, manifest_paths
from app.rundir.run_dir import (
    RunDir,
    atomic_write_bytes,
    atomic_write_json,
    hash_tree,
    now,
    sha256_file,
    symlinks_in,
)

SELF_CHECKED = (SPEC_JSON,)  # open_run compares it byte for byte with the spec being run
# Written before the first stage completes; a directory with no manifest yet (made by older code, or
# killed before any seal) may hold them unsealed: the data is then checked and data.json sealed.
PRE_MANIFEST = (DATA_JSON, ENV_JSON)
SLURM_LOG = re.compile(rf"{LOGS_DIR}/slurm-[0-9]+_[0-9]+\.log")  # app/launch/slurm.py: appended after the run completes
ATOMIC_TMP = re.compile(r"\..+\.[A-Za-z0-9_]+\.tmp")  # app/rundir/run_dir.py atomic_write_bytes' temp name


def read_manifest(run: RunDir | Path, strict: bool = False) -> dict:
    """A run's manifest.json, its shape checked (IntegrityError naming it when damaged).

    Absent, it is an empty manifest; with `strict` (a run from elsewhere: publish, replay, the readers'
    verification) it must be present and not a link, and every path it names is checked (relative, no
    `..`; app/rundir/paths.py), else UserError."""
    root = run.path if isinstance(run, RunDir) else Path(run)
    if strict:
        inside(root, MANIFEST_JSON, str(root))  # a linked manifest.json could vouch for anything
        manifest = RunDir(root).read_json(MANIFEST_JSON)
        manifest_paths(manifest, str(root / MANIFEST_JSON))
        return manifest
    return RunDir(root).read_json(MANIFEST_JSON, missing_ok=True) or {"files": {}}


def write_published_manifest(run_path: Path, manifest: dict) -> None:
    """The manifest of a published copy (app/share/publish.py), written whole: the copy is new, or
    publishing in place only moves entries of absent files to "omitted"."""
    atomic_write_json(Path(run_path) / MANIFEST_JSON, manifest)


def update_manifest(run: RunDir) -> dict[str, str]:
    """Seal what a completed stage wrote. Files sealed earlier keep their recorded hash (never
    re-hashed into a clean manifest), so a change made meanwhile still shows in `repro audit`."""
    prev = read_manifest(run)
    old = prev.get("files", {})
    manifest = {**hash_tree(run.path, known=old), **old}
    record = {"files": manifest, "updated_at": now()}
    omitted = {rel: e for rel, e in prev.get("omitted", {}).items() if rel not in manifest}
    if omitted:  # a published run's left-out files stay accounted for (see app/share/publish.py)
        record["omitted"] = omitted
    run.write_json(MANIFEST_JSON, record)
    return manifest


@contextlib.contextmanager
def sealed_stage(run: RunDir, stage: str, required: list[str]) -> Iterator[RunDir]:
    """Mark `stage` running; on success hash the directory into the manifest and mark it complete,
    else failed (or interrupted)."""
    run.set_stage(stage, "running", required)
    try:
        yield run
    except Interrupted as exc:
        run.set_stage(stage, "interrupted", required, error=f"Interrupted: {exc}")
        raise
    except BaseException as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with contextlib.suppress(OSError, WriteFailed):  # a full disk may refuse this too: keep the first error
            run.set_stage(stage, "failed", required, error=f"{type(exc).__name__}: {message}")
        raise
    update_manifest(run)
    run.set_stage(stage, "complete", required)


def _write_manifest(run: RunDir, manifest: dict) -> None:
    manifest["updated_at"] = now()
    run.write_json(MANIFEST_JSON, manifest)


def _sha(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def seal_write(run: RunDir, rel: str, data: bytes) -> None:
    """Write `rel`, recording its hash first; until the write lands the old hash stays acceptable."""
    manifest = read_manifest(run)
    manifest.setdefault("sealing", {})[rel] = manifest["files"].get(rel)
    manifest["files"][rel] = hashlib.sha256(data).hexdigest()
    _write_manifest(run, manifest)
    atomic_write_bytes(run.file(rel), data)
    del manifest["sealing"][rel]
    _write_manifest(run, manifest)


def seal_json(run: RunDir, rel: str, obj: object) -> None:
    """`seal_write` of JSON in the same format as RunDir.write_json."""
    seal_write(run, rel, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def vouches(manifest: dict, rel: str, sha: str | None) -> bool:
    """Whether `sha` (None: the file is absent) is what the manifest records for `rel`, a recorded file,
    or what it held before a seal a kill interrupted (the seal records that under "sealing" first; None
    for a file the seal was creating)."""
    sealing = manifest.get("sealing", {})
    return sha == manifest["files"][rel] or (rel in sealing and sha == sealing[rel])


def _prefix_ok(path: Path, record: dict) -> bool:
    if not path.is_file() or path.stat().st_size < record["bytes"]:
        return False
    with path.open("rb") as fh:
        return hashlib.sha256(fh.read(record["bytes"])).hexdigest() == record["sha256"]


def _status(run: RunDir) -> dict:
    """status.json, or no stages when it is a link (reported as one; never read through)."""
    return {"stages": {}} if is_link(run.file(STATUS_JSON)) else run.status()


def _open_outputs(run: RunDir) -> list[str]:
    """Output paths of stages that are not complete (their files may be unsealed)."""
    stages = _status(run)["stages"]
    return [p for s, outs in STAGE_OUTPUTS.items() if stages.get(s, {}).get("state") != "complete" for p in outs]


def _may_be_unsealed(rel: str, open_outputs: list[str]) -> bool:
    return rel in SELF_CHECKED or any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in open_outputs)


def is_volatile(rel: str, temp_ok: bool = False) -> bool:
    """Whether a file of a complete run may stand outside the manifest (layout.VOLATILE_FILES, a Slurm
    task log; with `temp_ok`, the temp file of an atomic write a kill interrupted, removed on reopening).
    Nothing else: a published run holds exactly these besides its recorded files (checked on docs/cpu_study)."""
    name = rel.rsplit("/", 1)[-1]
    return rel in VOLATILE_FILES or bool(SLURM_LOG.fullmatch(rel)) or (temp_ok and bool(ATOMIC_TMP.fullmatch(name)))


def slurm_logs(run: RunDir) -> list[str]:
    """The Slurm task logs of a run: volatile, so `repro audit` names them instead of vouching for them."""
    return [rel for rel, kind in entries(run.path) if kind == "file" and SLURM_LOG.fullmatch(rel)]


def unrecorded(run: RunDir, known: set[str], temp_ok: bool = False) -> list[str]:
    """One line per entry of a complete run that the manifest does not account for: every file is
    in it or volatile; links are reported by `custody_problems`, directories hold nothing by themselves."""
    lines = []
    for rel, kind in entries(run.path):
        if kind in ("dir", "link") or rel in known or is_volatile(rel, temp_ok):
            continue
        why = "not a regular file" if kind == "other" else "not in manifest.json"
        hidden = " (a hidden file)" if any(part.startswith(".") for part in rel.split("/")) else ""
        lines.append(f"{rel}: {why}{hidden}")
    return lines


def _unsafe_paths(manifest: dict) -> tuple[dict, list[str]]:
    """The manifest without entries whose path breaks app/rundir/paths.py's rule, and a line for each."""
    lines, clean = [], dict(manifest)
    for key in ("files", "omitted", "partial"):
        section = manifest.get(key)
        if not isinstance(section, dict):
            continue
        bad = [rel for rel in section if not is_safe_rel(rel)]
        lines += [f"{rel}: not a relative path inside the run directory ({MANIFEST_JSON} {key})" for rel in bad]
        clean[key] = {rel: v for rel, v in section.items() if rel not in bad}
    return clean, lines


def custody_problems(run: RunDir, strict: bool = False) -> list[str]:
    """One line per file that differs from what the manifest vouches for (empty when intact).

    In a complete run every file must be in the manifest or volatile (`unrecorded`); `strict` (audit)
    also counts the temp file of an interrupted atomic write, which reopening a run removes."""
    manifest, unsafe = _unsafe_paths(read_manifest(run))
    current = hash_tree(run.path)
    open_outputs = _open_outputs(run)
    problems = [f"{rel}: is a symlink (a run directory holds no links)" for rel in symlinks_in(run.path)] + unsafe
    for rel in sorted(manifest["files"]):
        if not vouches(manifest, rel, current.get(rel)):
            problems.append(f"{rel}: missing" if rel not in current else f"{rel}: sha256 differs from manifest.json")
    for rel, record in sorted(manifest.get("partial", {}).items()):
        path = run.file(rel)
        if path.is_file() and not is_link(path) and not _prefix_ok(path, record):
            problems.append(f"{rel}: its first {record['bytes']} bytes differ from manifest.json")
    if not run.file(MANIFEST_JSON).is_file():
        if any(s.get("state") == "complete" for s in _status(run)["stages"].values()):
            problems.append(f"{MANIFEST_JSON}: missing although a stage is complete")
        open_outputs = [*open_outputs, *PRE_MANIFEST]
    omitted = manifest.get("omitted", {})  # a published run's left-out files (app/share/publish.py)
    problems += [
        f"{rel}: sha256 differs from its omitted record"
        for rel, entry in sorted(omitted.items())
        if rel in current and current[rel] != entry["sha256"]
    ]
    if _status(run).get("state") == "complete" and run.file(MANIFEST_JSON).is_file():
        return problems + unrecorded(run, set(manifest["files"]) | set(omitted), temp_ok=not strict)
    unsealed = [rel for rel in current if rel not in manifest["files"] and rel not in omitted]
    problems += [f"{rel}: not in manifest.json" for rel in unsealed if not _may_be_unsealed(rel, open_outputs)]
    return problems


def stage_sealed(run: RunDir, stage: str) -> bool:
    """Whether the manifest already seals every output of `stage` (sealing is the stage's last act
    before status.json says complete, so a kill in between leaves exactly this)."""
    sealed = read_manifest(run)["files"]
    outputs = [p for p in STAGE_OUTPUTS[stage] if not p.endswith(".tmp/") and p not in OPTIONAL_OUTPUTS]
    return all(p in sealed or (p.endswith("/") and any(r.startswith(p) for r in sealed)) for p in outputs)


def verify_run(run: RunDir) -> None:
    """Refuse to start or extend a run directory whose files differ from its manifest."""
    problems = custody_problems(run)
    if problems:
        rel, why = problems[0].split(": ", 1)
        more = f" (+{len(problems) - 1} more; `repro audit` lists them)" if len(problems) > 1 else ""
        raise IntegrityError(f"{run.file(rel)}: {why}; refusing to extend a run that was altered{more}")


def seal_existing(run: RunDir, rel: str) -> None:
    """Record a file written before custody began (a run directory from older code)."""
    if rel not in read_manifest(run)["files"] and run.file(rel).is_file():
        seal_write(run, rel, run.file(rel).read_bytes())


def record_partial(run: RunDir, rel: str) -> None:
    """Vouch for the current bytes of a file the running stage appends to."""
    manifest = read_manifest(run)
    path = run.file(rel)
    manifest.setdefault("partial", {})[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    _write_manifest(run, manifest)


def trim_to_trusted(run: RunDir, rel: str) -> int:
    """Cut `rel` back to the prefix the manifest vouches for (IntegrityError if that prefix changed)."""
    record = read_manifest(run).get("partial", {}).get(rel, {"bytes": 0, "sha256": hashlib.sha256().hexdigest()})
    path = run.file(rel)
    if not path.is_file():
        return 0
    if not _prefix_ok(path, record):
        raise IntegrityError(f"{path}: its first {record['bytes']} bytes differ from manifest.json; refusing to resume")
    if path.stat().st_size != record["bytes"]:  # a torn or unrecorded tail is regenerated, never trusted
        with path.open("rb") as fh:
            atomic_write_bytes(path, fh.read(record["bytes"]))
    return record["bytes"]


def record_resume(run: RunDir, step: int, world_size: int, global_batch: int, log_rel: str = TRAIN_LOG_JSONL) -> None:
    """Vouch for the resumable checkpoint `resume/latest.json` points at and the log lines before it."""
    latest = read_resume_json(run.file(RESUME_LATEST))
    files = hash_tree(run.file(RESUME_DIR) / latest["dir"])
    log = run.file(log_rel)
    manifest = read_manifest(run)
    manifest["resume"] = {
        "step": step,
        "dir": latest["dir"],
        "world_size": world_size,
        "global_batch": global_batch,
        "files": files,
        "log": {"bytes": log.stat().st_size, "sha256": sha256_file(log)},
    }
    _write_manifest(run, manifest)


def resume_record(run: RunDir) -> dict | None:
    """What the manifest vouches for of the resumable checkpoint (step, dir, world size, files, the
    train-log prefix it covers), or None."""
    return read_manifest(run).get("resume")


def trusted_resume(
    run: RunDir, latest: dict, world_size: int, log_rel: str = TRAIN_LOG_JSONL, quiet: bool = False
) -> bool:
    """Whether `latest` may be resumed from: IntegrityError when it was altered, UserError on another
    world size, False (restart from step 0) when a kill left it unrecorded."""
    record = resume_record(run)
    if record is None or record["dir"] != latest.get("dir") or record["step"] != latest.get("step"):
        if quiet:
            return False
        print(
            f"warning: {run.file(RESUME_DIR)}/{latest['dir']} is not recorded in manifest.json; restarting from step 0",
            file=sys.stderr,
        )
        return False
    if record["world_size"] != world_size:
        raise UserError(
            f"{run.path}: resuming with {world_size} process(es), but the run trained with {record['world_size']} "
            f"(global batch {record['global_batch']}); relaunch with the same process count"
        )
    src = run.file(RESUME_DIR) / latest["dir"]
    found = hash_tree(src)
    for name, sha in sorted(record["files"].items()):
        if found.get(name) != sha:
            raise IntegrityError(f"{src / name}: differs from manifest.json; refusing to resume from it")
    if not _prefix_ok(run.file(log_rel), record["log"]):
        raise IntegrityError(f"{run.file(log_rel)}: its first {record['log']['bytes']} bytes differ from manifest.json")
    return True


def read_resume_json(path: Path) -> dict:
    """A JSON object from resume/ (latest.json, rng.json), or IntegrityError naming the file."""
    try:
        obj = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, an over-long integer, deep nesting
        raise IntegrityError(f"{path}: not JSON, refusing to resume from it ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise IntegrityError(f"{path}: not a JSON object, refusing to resume from it")
    return obj


def preflight_resume(run: RunDir, world_size: int) -> None:
    """Before a resumed stage writes anything: every recorded resume file must still match the
    manifest (IntegrityError naming the first that differs), so a planted file changes nothing."""
    pointer = run.file(RESUME_LATEST)
    if pointer.is_file():
        trusted_resume(run, read_resume_json(pointer), world_size, quiet=True)


class PartialLog:
    """An append-only file of the running stage: trimmed to its trusted prefix, recorded as it grows."""

    def __init__(self, run: RunDir, rel: str):
        self.run, self.rel = run, rel

    def trim(self) -> int:
        return trim_to_trusted(self.run, self.rel)

    def record(self) -> None:
        record_partial(self.run, self.rel)
