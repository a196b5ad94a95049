"""`repro run` across stage environments: a stage whose Python (app/env/stage_env.py) is not this
interpreter runs as a child process, `PY -m app train SPEC --resume` or `PY -m app eval SPEC`.

The child takes the run's lock itself, so the parent holds it only around a stage it runs in-process
(between two stages another process may take the run; the next stage then exits 2 "in use"). The
parent forwards SIGTERM, SIGINT and SIGUSR1 to the child (which checkpoints and exits 3, app/preempt.py)
and exits with the child's code; after a forwarded stop it starts no further stage.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from app import preempt
from app.env.stage_env import STARTED_AS, StageEnv, resolve
from app.launch.stages import eval_stage, pending_stages, run_stages, train_stage
from app.rundir.find import find_run_dir
from app.spec.run_spec import RunSpec

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class StageFailed(Exception):
    """A stage child exited non-zero; `exit_code` is what `repro run` exits with."""

    def __init__(self, stage: str, exit_code: int) -> None:
        super().__init__(f"{stage} stage exited {exit_code}")
        self.exit_code = exit_code


def stage_argv(env: StageEnv, spec_path: Path, runs_root: Path, progress: bool) -> list[str]:
    """The child's command line: the stage's own CLI command, resuming an interrupted training."""
    argv = [env.python, "-m", "app", env.stage, str(spec_path), "--runs-dir", str(runs_root)]
    argv += ["--resume"] if env.stage == "train" else []
    return argv + ([] if progress else ["--no-progress"])


def run_child(argv: list[str], env: StageEnv) -> tuple[int, str | None]:
    """Run argv with the stop signals forwarded; (exit code as a shell reports it, last signal forwarded).

    The child gets its own process group so a terminal's Ctrl-C reaches it once (through us), not twice."""
    proc = subprocess.Popen(argv, env={**os.environ, STARTED_AS: env.python}, process_group=0)
    forwarded: list[str] = []

    def forward(signum: int, _frame) -> None:
        forwarded.append(signal.Signals(signum).name)
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        rc = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return (128 - rc if rc < 0 else rc), (forwarded[-1] if forwarded else None)


def run_in_envs(spec: RunSpec, spec_path: Path, runs_root: Path, progress: bool = True, log=None) -> Path:
    """`repro run`: each pending stage in its environment; all in this process (run_stages, the lock held
    throughout) when every pending stage's Python is this interpreter. Returns the run directory."""
    pending = pending_stages(spec, runs_root)
    envs = {stage: resolve(stage) for stage in pending}
    if all(env.is_current for env in envs.values()):
        return run_stages(spec, runs_root, progress=progress).path
    for stage in pending:
        env = envs[stage]
        if env.is_current and stage == "train":
            train_stage(spec, runs_root, resume=True, progress=progress)
        elif env.is_current:
            eval_stage(spec, runs_root, progress=progress)
        else:
            if log:
                log(f"{stage} stage: in {env.python} ({env.chosen_by})")
            rc, stopped = run_child(stage_argv(env, spec_path, runs_root, progress), env)
            if rc:
                raise StageFailed(stage, rc)
            if stopped:
                raise preempt.Interrupted(f"{stopped} received")  # the stage finished; start no other
        preempt.check()
    return find_run_dir(spec, runs_root)
