"""`repro publish`: shareable copies of run directories, large files left out but still accounted for.

A published run keeps every small file (spec, env, data fingerprint, logs, metrics, predictions,
figures) and lists each left-out file (checkpoint, resume state) under the manifest's "omitted" key
with its recorded sha256 and size, so `repro audit` can check what is present and `repro replay`
can still compare a re-trained checkpoint with the original's hash. Pure: no torch imports.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import UserError
from app.rundir.layout import CHECKPOINT_DIR, EVAL_COPY_DIR, RESUME_DIR, STATUS_JSON
from app.rundir.manifest import read_manifest, write_published_manifest
from app.rundir.paths import inside, refuse_special
from app.rundir.run_dir import RunDir, hash_tree, now, refuse_symlinks

OMIT_DIRS = (CHECKPOINT_DIR, EVAL_COPY_DIR, RESUME_DIR)  # large, and rebuilt by `repro replay`
LEFT_OUT = "large file left out when publishing"
# The one-time conversion of run copies whose checkpoints were removed before publishing existed.
ABSENT = "deleted from the run before publishing; size not recorded"
REPORT_FILES = ("report.md", "report.html", "report.json")


def is_large(rel: str) -> bool:
    return rel.split("/", 1)[0] in OMIT_DIRS


def recorded_hashes(manifest: dict) -> dict[str, str]:
    """sha256 of every file the run recorded, present or omitted."""
    omitted = {rel: entry["sha256"] for rel, entry in manifest.get("omitted", {}).items()}
    return {**omitted, **manifest["files"]}


def check_files(run_path: Path) -> tuple[list[str], dict[str, dict]]:
    """(problems, omitted entries whose file is absent) for a run directory against its manifest."""
    manifest = read_manifest(run_path, strict=True)
    files, omitted = manifest["files"], manifest.get("omitted", {})
    current = hash_tree(run_path)
    problems = [f"file {rel}: missing" for rel in files if rel not in current]
    problems += [f"file {rel}: sha256 differs" for rel in files if rel in current and current[rel] != files[rel]]
    problems += [
        f"file {rel}: sha256 differs from its omitted record"
        for rel, entry in omitted.items()
        if rel in current and current[rel] != entry["sha256"]
    ]
    problems += [f"file {rel}: not in manifest" for rel in current if rel not in files and rel not in omitted]
    return problems, {rel: entry for rel, entry in omitted.items() if rel not in current}


def omitted_line(rel: str, entry: dict) -> str:
    size = f"{entry['size']} bytes" if entry.get("size") is not None else "size unknown"
    return f"omitted {rel}: sha256 {entry['sha256']}, {size} ({entry.get('reason', LEFT_OUT)})"


@dataclass
class Plan:
    """What publishing one run copies and what it records as omitted."""

    src: Path
    keep: dict[str, str] = field(default_factory=dict)
    omitted: dict[str, dict] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def plan_run(src: Path, missing_as_omitted: bool) -> Plan:
    """Check a run (complete, every present file as recorded) and split its files into keep/omit."""
    src = Path(src)
    refuse_symlinks(src)  # a link would copy a file from outside the run into the bundle
    refuse_special(src)
    status = RunDir(src).status()
    if status.get("state") != "complete":
        raise UserError(f"{src}: run is {status.get('state')!r}, only complete runs are published")
    manifest = read_manifest(src, strict=True)
    problems, _ = check_files(src)
    missing = {rel for rel in manifest["files"] if not (src / rel).is_file()}
    fatal = [p for p in problems if not p.endswith(": missing")]
    fatal += [f"file {rel}: missing" for rel in sorted(missing) if not (missing_as_omitted and is_large(rel))]
    if fatal:
        hint = "; --missing-as-omitted records deleted checkpoint files as omitted" if missing else ""
        raise UserError(f"{src}: {fatal[0]} (of {len(fatal)} problem(s); `repro audit` lists them){hint}")
    plan = Plan(src, manifest=manifest, omitted=dict(manifest.get("omitted", {})))
    for rel, sha in manifest["files"].items():
        if not is_large(rel):
            plan.keep[rel] = sha
        elif rel in missing:
            plan.omitted[rel] = {"sha256": sha, "size": None, "reason": ABSENT}
        else:
            plan.omitted[rel] = {"sha256": sha, "size": (src / rel).stat().st_size, "reason": LEFT_OUT}
    return plan


def published_manifest(plan: Plan) -> dict:
    """The source manifest with large files moved to "omitted"; re-publishing keeps it byte-stable."""
    out = {k: v for k, v in plan.manifest.items() if k not in ("files", "omitted")}
    out["files"] = dict(sorted(plan.keep.items()))
    out["omitted"] = dict(sorted(plan.omitted.items()))
    out.setdefault("published_at", now())
    return out


def write_run(plan: Plan, runs_out: Path) -> Path:
    """Copy the kept files into runs_out/<run name> via a temporary directory (nothing half-written)."""
    dest = runs_out / plan.src.resolve().name
    if dest.resolve() == plan.src.resolve():
        if any((plan.src / rel).exists() for rel in plan.omitted):
            raise UserError(f"{plan.src}: publishing in place cannot leave out files that are present; use --out")
        write_published_manifest(dest, published_manifest(plan))
        return dest
    if dest.exists():
        raise UserError(f"{dest}: already exists; publish into an empty --out or remove it")
    runs_out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=runs_out, prefix=f".{dest.name}."))
    try:
        for rel in [*plan.keep, STATUS_JSON]:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(plan.src / rel, tmp / rel)
        write_published_manifest(tmp, published_manifest(plan))
        tmp.chmod(0o755)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def copy_report(report: Path, out: Path) -> list[Path]:
    """The study report (report.md/.html/.json and its PNGs) into `out`."""
    if not (report / "report.json").is_file():
        raise UserError(f"{report}: no report.json (make one with `repro report`)")
    if report.resolve() == out.resolve():
        return []
    names = [n for n in REPORT_FILES if (report / n).is_file()] + sorted(p.name for p in report.glob("*.png"))
    for name in names:
        inside(report, name, f"{report} (report)")  # a linked figure would publish a file from elsewhere
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(report / name, out / name)
    return [out / n for n in names]


def publish(
    run_dirs: list[Path], out: Path, report: Path | None = None, missing_as_omitted: bool = False
) -> list[Path]:
    """Publish runs into out/runs/ (and the report into out/); every run is checked before any is written."""
    plans = [plan_run(Path(r), missing_as_omitted) for r in run_dirs]
    names = [p.src.resolve().name for p in plans]
    if len(set(names)) != len(names):
        raise UserError(f"two runs share a directory name: {sorted(n for n in names if names.count(n) > 1)[0]}")
    written = [write_run(plan, Path(out) / "runs") for plan in plans]
    if report is not None:
        copy_report(Path(report), Path(out))
    return written
