"""`repro audit`: a run's files against its manifest and its environment against this machine, as lines.

The verdict comes first; then one line per stage's environment (its image verdict), the differing
fields counted unless asked for; then omitted files (with --verbose) and unhashed Slurm logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.env.fingerprint import audit as audit_files
from app.env.fingerprint import strict_problems
from app.errors import UserError
from app.inputs.hub import run_pin_problems
from app.rundir.manifest import slurm_logs
from app.rundir.run_dir import RunDir
from app.share.publish import check_files, omitted_line


@dataclass
class AuditResult:
    ok: bool
    verdict: str
    problems: list[str] = field(default_factory=list)  # printed after a failed verdict
    details: list[str] = field(default_factory=list)  # environment summary, omitted files, logs


def audit_run(run_dir: Path, strict: bool = False, verbose: bool = False) -> AuditResult:
    """Audit one run directory; UserError when it cannot be read at all."""
    problems, env_diffs = audit_files(run_dir)
    problems += run_pin_problems(run_dir)
    env_problems = strict_problems(run_dir, _runtime()) if strict else []
    omitted = _absent_omitted(run_dir, problems)
    logs = [
        f"unhashed {rel}: Slurm task log (volatile, not covered by the manifest)" for rel in slurm_logs(RunDir(run_dir))
    ]
    omitted_lines = [omitted_line(rel, e) for rel, e in omitted.items()] if verbose else []
    details = env_summary(env_diffs, verbose) + omitted_lines + logs
    if problems or env_problems:
        what = f"{len(problems)} file problem(s)" + (f", {len(env_problems)} environment problem(s)" if strict else "")
        return AuditResult(False, f"AUDIT FAILED {run_dir}: {what}", problems + env_problems, details)
    also = " and the environment matches its record and lockfile" if strict else ""
    left_out = f"; {len(omitted)} omitted (published without them)" if omitted else ""
    return AuditResult(
        True, f"AUDIT OK {run_dir}: every file present matches its manifest{left_out}{also}", [], details
    )


def env_summary(env_diffs: list[str], verbose: bool) -> list[str]:
    """Each stage's image verdict; the field-by-field differences only with --verbose, else counted."""
    heads = [line for line in env_diffs if " image: " in line or line.startswith("env:")]
    rest = [line for line in env_diffs if line not in heads]
    if verbose or not rest:
        return env_diffs
    return heads + [f"environment: {len(rest)} recorded field(s) differ from this machine (--verbose lists them)"]


def _absent_omitted(run_dir: Path, problems: list[str]) -> dict:
    """The manifest's omitted files absent here; none when its paths are unsafe (a problem named already)."""
    try:
        return check_files(run_dir)[1]
    except UserError:
        if not problems:
            raise
        return {}


def _logs(run_dir: Path) -> list[str]:
    return slurm_logs(RunDir(run_dir))


def _runtime() -> dict | None:
    """torch's CUDA/cuDNN versions, when torch is installed here (the eval image has it too)."""
    try:
        from app.env.determinism import runtime_record
    except ImportError:
        return None
    return runtime_record()
