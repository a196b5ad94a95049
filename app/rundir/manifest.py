"""Chain of custody: a stage trusts only what manifest.json vouches for.

- `verify_run`: before a stage starts or extends a run directory, every sealed file must still match
  the manifest, and no file may appear that no unfinished stage could have written; otherwise the
  stage stops (IntegrityError, exit 1, naming the file) instead of hashing it into a clean manifest.
- `seal_write`: files rewritten before a run completes (data.json, env.json) name their new hash in
  the manifest before they change, so a kill in between still leaves a directory that verifies.
- `record_partial` / `trim_to_trusted`: an append-only file of a running stage (predictions.jsonl)
  is trusted up to the prefix last recorded; a resumed stage cuts the rest and regenerates it.
- `record_resume` / `trusted_resume`: the resumable checkpoint and the train-log prefix it continues.
- `verify_data`: the GSM8K files still hash to what data.json recorded (else UserError, exit 2).
Pure.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from app.errors import IntegrityError, UserError
from app.rundir.layout import read_run_json
from app.rundir.paths import entries, is_link, is_safe_rel
from app.rundir.run_dir import RunDir, atomic_write_bytes, hash_tree, now, sha256_file, symlinks_in

MANIFEST = "manifest.json"
# What each stage writes: while a stage is unfinished its outputs may exist without a manifest entry.
STAGE_OUTPUTS = {
    "train": ("train_log.jsonl", "train_metrics.json", "train_curves.png", "checkpoint/", "checkpoint.tmp/"),
    "eval": ("predictions.jsonl", "eval_metrics.json"),
}
SELF_CHECKED = ("spec.json",)  # open_run compares it byte for byte with the spec being run
# Written before the first stage completes; a directory with no manifest yet (made by older code, or
# killed before any seal) may hold them unsealed: the data is then checked and data.json sealed.
PRE_MANIFEST = ("data.json", "env.json")
# The files of a complete run that no manifest can hold: the manifest itself, status.json (rewritten
# when a stage ends, after sealing) and the lock file (rewritten by whoever opens the run). Nothing
# else: a published run holds exactly these besides its recorded files (checked on docs/cpu_study).
VOLATILE = ("manifest.json", "status.json", ".lock")
SLURM_LOG = re.compile(r"logs/slurm-[0-9]+_[0-9]+\.log")  # app/launch/slurm.py: appended after the run completes
ATOMIC_TMP = re.compile(r"\..+\.[A-Za-z0-9_]+\.tmp")  # app/rundir/run_dir.py atomic_write_bytes' temp name


def read_manifest(run: RunDir) -> dict:
    path = run.file(MANIFEST)
    if not path.is_file():
        return {"files": {}}
    return read_run_json(path, MANIFEST)  # IntegrityError naming it when damaged or of the wrong shape


def _write_manifest(run: RunDir, manifest: dict) -> None:
    manifest["updated_at"] = now()
    run.write_json(MANIFEST, manifest)


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


def _prefix_ok(path: Path, record: dict) -> bool:
    if not path.is_file() or path.stat().st_size < record["bytes"]:
        return False
    with path.open("rb") as fh:
        return hashlib.sha256(fh.read(record["bytes"])).hexdigest() == record["sha256"]


def _status(run: RunDir) -> dict:
    """status.json, or no stages when it is a link (reported as one; never read through)."""
    return {"stages": {}} if is_link(run.file("status.json")) else run.status()


def _open_outputs(run: RunDir) -> list[str]:
    """Output paths of stages that are not complete (their files may be unsealed)."""
    stages = _status(run)["stages"]
    return [p for s, outs in STAGE_OUTPUTS.items() if stages.get(s, {}).get("state") != "complete" for p in outs]


def _may_be_unsealed(rel: str, open_outputs: list[str]) -> bool:
    return rel in SELF_CHECKED or any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in open_outputs)


def is_volatile(rel: str, temp_ok: bool = False) -> bool:
    """Whether a file of a complete run may stand outside the manifest (VOLATILE, a Slurm task log;
    with `temp_ok`, the temp file of an atomic write a kill interrupted, removed on reopening)."""
    name = rel.rsplit("/", 1)[-1]
    return rel in VOLATILE or bool(SLURM_LOG.fullmatch(rel)) or (temp_ok and bool(ATOMIC_TMP.fullmatch(name)))


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
        lines += [f"{rel}: not a relative path inside the run directory ({MANIFEST} {key})" for rel in bad]
        clean[key] = {rel: v for rel, v in section.items() if rel not in bad}
    return clean, lines


def custody_problems(run: RunDir, strict: bool = False) -> list[str]:
    """One line per file that differs from what the manifest vouches for (empty when intact).

    In a complete run every file must be in the manifest or volatile (`unrecorded`); `strict` (audit)
    also counts the temp file of an interrupted atomic write, which reopening a run removes."""
    manifest, unsafe = _unsafe_paths(read_manifest(run))
    current = hash_tree(run.path)
    sealing, open_outputs = manifest.get("sealing", {}), _open_outputs(run)
    problems = [f"{rel}: is a symlink (a run directory holds no links)" for rel in symlinks_in(run.path)] + unsafe
    for rel, sha in sorted(manifest["files"].items()):
        if current.get(rel) != sha and not (rel in sealing and current.get(rel) == sealing[rel]):
            problems.append(f"{rel}: missing" if rel not in current else f"{rel}: sha256 differs from manifest.json")
    for rel, record in sorted(manifest.get("partial", {}).items()):
        path = run.file(rel)
        if path.is_file() and not is_link(path) and not _prefix_ok(path, record):
            problems.append(f"{rel}: its first {record['bytes']} bytes differ from manifest.json")
    if not run.file(MANIFEST).is_file():
        if any(s.get("state") == "complete" for s in _status(run)["stages"].values()):
            problems.append(f"{MANIFEST}: missing although a stage is complete")
        open_outputs = [*open_outputs, *PRE_MANIFEST]
    omitted = manifest.get("omitted", {})  # a published run's left-out files (app/share/publish.py)
    problems += [
        f"{rel}: sha256 differs from its omitted record"
        for rel, entry in sorted(omitted.items())
        if rel in current and current[rel] != entry["sha256"]
    ]
    if _status(run).get("state") == "complete" and run.file(MANIFEST).is_file():
        return problems + unrecorded(run, set(manifest["files"]) | set(omitted), temp_ok=not strict)
    unsealed = [rel for rel in current if rel not in manifest["files"] and rel not in omitted]
    problems += [f"{rel}: not in manifest.json" for rel in unsealed if not _may_be_unsealed(rel, open_outputs)]
    return problems


def stage_sealed(run: RunDir, stage: str) -> bool:
    """Whether the manifest already seals every output of `stage` (sealing is the stage's last act
    before status.json says complete, so a kill in between leaves exactly this)."""
    sealed = read_manifest(run)["files"]
    outputs = [p for p in STAGE_OUTPUTS[stage] if not p.endswith(".tmp/")]
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


def record_resume(run: RunDir, step: int, world_size: int, global_batch: int, log_rel: str = "train_log.jsonl") -> None:
    """Vouch for the resumable checkpoint `resume/latest.json` points at and the log lines before it."""
    latest = json.loads(run.file("resume/latest.json").read_text())
    files = hash_tree(run.file("resume") / latest["dir"])
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


def trusted_resume(
    run: RunDir, latest: dict, world_size: int, log_rel: str = "train_log.jsonl", quiet: bool = False
) -> bool:
    """Whether `latest` may be resumed from: IntegrityError when it was altered, UserError on another
    world size, False (restart from step 0) when a kill left it unrecorded."""
    record = read_manifest(run).get("resume")
    if record is None or record["dir"] != latest.get("dir") or record["step"] != latest.get("step"):
        if quiet:
            return False
        print(
            f"warning: {run.file('resume')}/{latest['dir']} is not recorded in manifest.json; restarting from step 0",
            file=sys.stderr,
        )
        return False
    if record["world_size"] != world_size:
        raise UserError(
            f"{run.path}: resuming with {world_size} process(es), but the run trained with {record['world_size']} "
            f"(global batch {record['global_batch']}); relaunch with the same process count"
        )
    src = run.file("resume") / latest["dir"]
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
    pointer = run.file("resume/latest.json")
    if pointer.is_file():
        trusted_resume(run, read_resume_json(pointer), world_size, quiet=True)


def verify_data(run: RunDir, source: str) -> None:
    """Refuse (exit 2, naming the file) when a GSM8K file no longer hashes to what data.json recorded."""
    from app.inputs.gsm8k import resolve_source, source_hashes  # here: the trainer imports custody without pydantic

    where = resolve_source(source)
    if isinstance(where, str):  # hub data is pinned by its recorded commit, not by local files
        return
    recorded = run.read_json("data.json").get("source_sha256", {})
    current = source_hashes(source)
    for name, sha in sorted(recorded.items()):
        if current.get(name) != sha:
            state = "missing" if current.get(name) is None else "changed"
            now_sha = (current.get(name) or "none")[:12]
            raise UserError(
                f"{where / name}: {state} since this run recorded it in data.json "
                f"(sha256 {sha[:12]}… → {now_sha}…); nothing written"
            )


class PartialLog:
    """An append-only file of the running stage: trimmed to its trusted prefix, recorded as it grows."""

    def __init__(self, run: RunDir, rel: str):
        self.run, self.rel = run, rel

    def trim(self) -> int:
        return trim_to_trusted(self.run, self.rel)

    def record(self) -> None:
        record_partial(self.run, self.rel)
