"""Which Python runs each stage: the train environment (torch + transformers) and the eval environment
(vLLM) are separate pinned installs, as the two images split them.

For a stage, in order: an explicit interpreter (`REPRO_TRAIN_PYTHON`, `REPRO_EVAL_PYTHON`), else the
project's stage venv when `make stage-envs` finished it (`.venv-train`, `.venv-eval`, each holding the
`.installed` marker naming its lock), else the running interpreter (the single dev venv: fine on CPU).
`repro run` starts a stage whose Python is not the running one as a child process; a Slurm batch
script is given both paths at submit time; env.json records, per stage, which one ran and why.
Pure: standard library only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from app.env.lockfiles import REPO, installed_from
from app.errors import UserError

STAGES = ("train", "eval")
OVERRIDE = {"train": "REPRO_TRAIN_PYTHON", "eval": "REPRO_EVAL_PYTHON"}
VENV_DIRS = {"train": ".venv-train", "eval": ".venv-eval"}
MARKER = ".installed"  # written last by `make setup` / `make stage-envs`: the venv is complete
CURRENT = "current interpreter"
# Set by the parent `repro run` in a stage child's environment: the interpreter path it was started as
# (a wrapper script outside any venv cannot be recognised from inside the child otherwise).
STARTED_AS = "REPRO_STAGE_PYTHON"


@dataclass(frozen=True)
class StageEnv:
    """The Python that runs `stage`, the lock it was installed from and how it was chosen."""

    stage: str
    python: str
    lock: str | None
    chosen_by: str  # the override variable, the venv directory's name, or CURRENT

    @property
    def is_current(self) -> bool:
        return is_running(self.python)


def venv_of(python: str | Path) -> Path | None:
    """The venv directory whose bin/ holds `python` (it has pyvenv.cfg), else None."""
    prefix = Path(python).parent.parent
    return prefix if (prefix / "pyvenv.cfg").is_file() else None


def lock_of(python: str | Path) -> str | None:
    """The lock named by the `.installed` marker of `python`'s venv (a repo-relative path made absolute)."""
    venv = venv_of(python)
    marker = venv / MARKER if venv else None
    text = marker.read_text().strip() if marker and marker.is_file() else ""
    return str(REPO / text) if text else None


def is_running(python: str | Path) -> bool:
    """Whether `python` is this process's interpreter. Venvs are told apart by their directory, never by
    the resolved binary (every venv's bin/python links to the same base interpreter)."""
    if os.environ.get(STARTED_AS) == str(python):
        return True
    venv = venv_of(python)
    if venv is not None:
        return venv.resolve() == Path(sys.prefix).resolve()
    return sys.prefix == sys.base_prefix and Path(python).resolve() == Path(sys.executable).resolve()


def resolve(stage: str, root: Path = REPO) -> StageEnv:
    """The environment `stage` runs in (see the module docstring for the order)."""
    var = OVERRIDE[stage]
    given = os.environ.get(var)
    if given:
        python = os.path.abspath(given)
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise UserError(f"{var}={given}: not an executable file (the Python to run the {stage} stage)")
        return StageEnv(stage, python, lock_of(python), var)
    venv = Path(root) / VENV_DIRS[stage]
    python = venv / "bin" / "python"
    if (venv / MARKER).is_file() and python.is_file():
        return StageEnv(stage, str(python.absolute()), lock_of(python), VENV_DIRS[stage])
    return StageEnv(stage, sys.executable, installed_from(), CURRENT)


def record(stage: str) -> dict:
    """env.json's `stage_env` for this attempt: the interpreter that ran the stage, the lock its venv was
    installed from, how it was chosen, and (when the stage was started in another interpreter than the
    one the resolution names, e.g. `repro train` by hand) the one it resolves to."""
    try:
        env = resolve(stage)
    except UserError as exc:  # a bad override must not fail a stage that is already running here
        return {"python": sys.executable, "lock": installed_from(), "chosen_by": "started directly", "error": str(exc)}
    here = env.is_current
    python = env.python if here else sys.executable
    out = {"python": python, "lock": env.lock if here else installed_from(), "chosen_by": env.chosen_by}
    if not here:
        out.update(chosen_by="started directly", resolves_to=env.python)
    return out
