"""`repro sweep --launcher slurm`: the specs as one Slurm job array, written as a plain sbatch script.

Why a generated script rather than submitit: the script is the whole story of a task (what runs,
where its log goes, how a signal becomes a checkpoint and a requeue). `--dry-run` prints it, it is
saved next to the runs, `sbatch` runs it unchanged and a user can edit and resubmit it by hand on a
cluster we have never seen. submitit pickles a Python callable and runs it inside its own wrapper,
which hides exactly those parts, and it would need to be installed on every node.

Each array task trains with the train stage's Python (`TRAIN_PY`; for multi-process training `torchrun`
under `srun`), then runs `repro run SPEC` with the eval stage's Python (`EVAL_PY`), resuming whatever
is unfinished. Both paths are resolved at submit time (app/env/stage_env.py: REPRO_TRAIN_PYTHON /
REPRO_EVAL_PYTHON, .venv-train / .venv-eval, else the submitting interpreter) and must be reachable
from the compute nodes. Pure apart from calling sbatch/squeue.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.env.stage_env import STAGES
from app.env.stage_env import resolve as resolve_stage_env
from app.errors import UserError
from app.launch.lead_time import DEFAULT_S, check_within, choose_lead
from app.launch.write_speed import measure
from app.preempt import EXIT_CODE
from app.rundir.find import find_run_dir
from app.rundir.jsonl import read_jsonl
from app.rundir.run_dir import RunDir, now
from app.spec.run_spec import RunSpec, load_spec

SLURM_DIR = ".slurm"  # under the runs root: saved batch scripts, Slurm's own output, submissions.jsonl
# torchrun's rendezvous port: 20000 + (array job id x 1009 + array task id) % 12000, so in
# [20000, 32000), below Linux's ephemeral ports (32768+). Two tasks of one array (at most 12000, far
# above Slurm's default MaxArraySize of 1001) never share a port on a node; other arrays shift by 1009.
RDZV_PORT_BASE, RDZV_PORT_SPAN, RDZV_PORT_STRIDE = 20000, 12000, 1009


@dataclass(frozen=True)
class SlurmOptions:
    """What a cluster user sets on `sbatch`; None leaves the cluster's default."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None
    gpus_per_task: int | None = None
    gres: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    max_parallel: int | None = None  # the array's %N
    nodes: int = 1
    gpus_per_node: int | None = None
    procs_per_node: int | None = None  # torchrun processes per node (default: gpus_per_node)
    signal_before_s: int | None = None  # SIGUSR1 this long before the time limit (None: lead_time.py)
    job_name: str = "repro-sweep"
    extra: tuple[str, ...] = field(default_factory=tuple)  # more `#SBATCH` lines, e.g. "--qos=high"

    @property
    def nproc(self) -> int:
        return self.procs_per_node or self.gpus_per_node or 1

    @property
    def distributed(self) -> bool:
        return self.nodes * self.nproc > 1


@dataclass(frozen=True)
class Task:
    spec_path: Path
    run_dir: Path
    trains: bool


def parse_time(text: str) -> int:
    """Slurm's --time formats (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) → seconds."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise UserError(f"--time {text!r}: expected M, M:S, H:M:S, D-H, D-H:M or D-H:M:S")
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if days is not None:  # D-H[:M[:S]]
        return ((days * 24 + a) * 60 + (b or 0)) * 60 + (c or 0)
    if c is not None:  # H:M:S
        return (a * 60 + b) * 60 + c
    return a * 60 + (b or 0)  # M or M:S


# What an option value may hold in a generated `#SBATCH` line: a newline would end the comment and
# start a shell command, a space would add another sbatch option, and shell metacharacters have no
# business there. Anything else (e.g. `--constraint=a&b`) is written into the saved script by hand.
OPTION_VALUE = re.compile(r"[A-Za-z0-9_.,:=%@+/-]+")


def check_options(opts: SlurmOptions) -> None:
    """Refuse (one line naming the option) a value that could leave its `#SBATCH` line."""
    named = [("--partition", opts.partition), ("--account", opts.account), ("--time", opts.time)]
    named += [("--gres", opts.gres), ("--mem", opts.mem), ("job name", opts.job_name)]
    named += [("--sbatch", x) for x in opts.extra]
    for flag, value in named:
        if value is not None and not OPTION_VALUE.fullmatch(value):
            raise UserError(
                f"{flag} {value!r}: a generated #SBATCH line holds only letters, digits and _ . , : = % @ + / -"
            )


def sbatch_lines(opts: SlurmOptions, n_tasks: int, out_dir: Path) -> list[str]:
    """The #SBATCH header: resources, the array, requeue and the pre-limit signal."""
    array = f"0-{n_tasks - 1}" + (f"%{opts.max_parallel}" if opts.max_parallel else "")
    pairs = [
        ("job-name", opts.job_name),
        ("array", array),
        ("partition", opts.partition),
        ("account", opts.account),
        ("time", opts.time),
        ("nodes", opts.nodes if opts.distributed else None),
        ("ntasks-per-node", 1 if opts.distributed else None),
        ("gpus-per-node", opts.gpus_per_node),
        ("gpus-per-task", opts.gpus_per_task),
        ("gres", opts.gres),
        ("cpus-per-task", opts.cpus_per_task),
        ("mem", opts.mem),
        ("requeue", True),
        ("open-mode", "append"),
        ("signal", f"B:USR1@{lead(opts)}"),
        ("output", f"{out_dir}/%A_%a.out"),
    ]
    lines = [f"#SBATCH --{k}" if v is True else f"#SBATCH --{k}={v}" for k, v in pairs if v is not None]
    return lines + [f"#SBATCH {x if x.startswith('-') else '--' + x}" for x in opts.extra]


def lead(opts: SlurmOptions) -> int:
    """The signal's lead time: as set (or computed by sweep_slurm), else the default."""
    return DEFAULT_S if opts.signal_before_s is None else opts.signal_before_s


def rdzv_port(array_job_id: int, array_task_id: int) -> int:
    """The rendezvous port of one array task (the batch script computes the same in bash)."""
    return RDZV_PORT_BASE + (array_job_id * RDZV_PORT_STRIDE + array_task_id) % RDZV_PORT_SPAN


RDZV_PORT_BASH = (
    f"$(( {RDZV_PORT_BASE} + (SLURM_ARRAY_JOB_ID * {RDZV_PORT_STRIDE} + SLURM_ARRAY_TASK_ID) % {RDZV_PORT_SPAN} ))"
)


def srun_cpus(opts: SlurmOptions) -> tuple[str, str]:
    """(an export line, srun's flag) for --cpus-per-task; empty without it. Since Slurm 22.05 srun no
    longer inherits the job's --cpus-per-task, and without it every torchrun worker of a node may share
    one core; SRUN_CPUS_PER_TASK carries it to any srun the work starts itself (Slurm 22.05+ reads it).
    The value is the job's SLURM_CPUS_PER_TASK, so an edited #SBATCH line is followed."""
    if opts.cpus_per_task is None:
        return "", ""
    cpus = f'"${{SLURM_CPUS_PER_TASK:-{opts.cpus_per_task}}}"'
    return f"  export SRUN_CPUS_PER_TASK={cpus}\n", f" --cpus-per-task={cpus}"


def bash_array(name: str, items: list) -> str:
    return f"{name}=(\n" + "".join(f"  {shlex.quote(str(x))}\n" for x in items) + ")"


TASK_BODY = r"""
SPEC=${SPECS[$SLURM_ARRAY_TASK_ID]}
RUN_DIR=${RUN_DIRS[$SLURM_ARRAY_TASK_ID]}
# Everything this task prints goes into its run directory (appended across requeues).
mkdir -p "$RUN_DIR/logs"
exec >>"$RUN_DIR/logs/slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.log" 2>&1
say() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) [slurm ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}] $*"; }
say "start on $(hostname) (job $SLURM_JOB_ID, restart ${SLURM_RESTART_COUNT:-0}): $SPEC"

# state_of [STAGE]: the run's (or one stage's) state from status.json; "new" before the first start.
state_of() {
  "$PY" - "$RUN_DIR/status.json" "$@" 2>/dev/null <<'EOF' || echo new
import json, sys
s = json.load(open(sys.argv[1]))
print(s["stages"].get(sys.argv[2], {}).get("state") if len(sys.argv) > 2 else s["state"])
EOF
}
if [ "$(state_of)" = complete ]; then say "already complete: nothing to do"; exit 0; fi

# SIGUSR1 comes --signal seconds before the time limit: ask the work to checkpoint and stop
# (it exits with code {exit_code}), then requeue this task; the next start resumes.
requeue=0 child=
on_usr1() { say "SIGUSR1: time limit near, checkpointing"; requeue=1; [ -n "$child" ] && kill -TERM "$child"; }
trap on_usr1 USR1
step() {  # run one command in the background, so the trap can run while it works
  "$@" & child=$!
  wait "$child"; rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
  child=
  return "$rc"
}
"""

SINGLE = """
rc=0
if [ "${TRAINS[$SLURM_ARRAY_TASK_ID]}" = 1 ] && [ "$(state_of train)" != complete ]; then
  say "training with $TRAIN_PY"
  REPRO_STAGE_PYTHON=$TRAIN_PY step "$TRAIN_PY" -m app train "$SPEC" --runs-dir "$RUNS" --resume
  rc=$?
fi
"""

DISTRIBUTED = """
rc=0
if [ "${{TRAINS[$SLURM_ARRAY_TASK_ID]}}" = 1 ] && [ "$(state_of train)" != complete ]; then
  # torchrun on every node (one srun task per node); the first host is the rendezvous point.
  # The port follows the array job and task ids (app/launch/slurm.py rdzv_port): two tasks of this
  # array that share a node never meet on one port.
  HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
  # torchrun (torch >= 2.12) waits this long for its workers to checkpoint after a signal; older: 30 s.
  export TORCH_ELASTIC_SHUTDOWN_TIMEOUT={lead}
  PORT={port}
{export_cpus}  say "training with $TRAIN_PY on $SLURM_JOB_NUM_NODES node(s) x {nproc} process(es)"
  say "rendezvous $HEAD:$PORT"
  REPRO_STAGE_PYTHON=$TRAIN_PY \\
    step srun --kill-on-bad-exit=1 --ntasks-per-node=1{srun_cpus} "$TRAIN_PY" -m torch.distributed.run \\
    --nnodes="$SLURM_JOB_NUM_NODES" --nproc-per-node={nproc} \\
    --rdzv-backend=c10d --rdzv-endpoint="$HEAD:$PORT" --rdzv-id="$SLURM_JOB_ID" \\
    -m app train "$SPEC" --runs-dir "$RUNS" --resume
  rc=$?
fi
"""

EVAL = """
if [ "$rc" = 0 ] && [ "$requeue" = 0 ]; then  # evaluation (training is complete) in the eval environment
  REPRO_STAGE_PYTHON=$EVAL_PY step "$EVAL_PY" -m app run "$SPEC" --runs-dir "$RUNS"
  rc=$?
fi
"""

TAIL = """
if [ "$requeue" = 1 ]; then
  say "requeueing (exit $rc): the next start resumes from the checkpoint"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
say "done (exit $rc), state $(state_of)"
exit "$rc"
"""


def distributed_part(opts: SlurmOptions) -> str:
    """The torchrun-under-srun part of the task body, with its port and CPU settings."""
    export_cpus, cpus_flag = srun_cpus(opts)
    return DISTRIBUTED.format(
        nproc=opts.nproc, port=RDZV_PORT_BASH, export_cpus=export_cpus, srun_cpus=cpus_flag, lead=lead(opts)
    )


def batch_script(
    tasks: list[Task],
    opts: SlurmOptions,
    runs_root: Path,
    python: str,
    workdir: Path,
    stage_pythons: dict[str, str] | None = None,
) -> str:
    """The whole sbatch script for one sweep: header, per-task arrays, the task body. `python` reads
    status.json; `stage_pythons` (stage → interpreter, default `python`) run the train and eval stages."""
    check_options(opts)
    stage_py = {"train": python, "eval": python, **(stage_pythons or {})}
    env = {k: os.environ[k] for k in ("GSM8K_DIR", "HF_HOME", "REPRO_CACHE") if k in os.environ}
    parts = [
        "#!/bin/bash",
        f"# Generated by `repro sweep --launcher slurm` at {now()}: one array task per spec.",
        *sbatch_lines(opts, len(tasks), runs_root / SLURM_DIR),
        "set -uo pipefail",
        bash_array("SPECS", [t.spec_path for t in tasks]),
        bash_array("RUN_DIRS", [t.run_dir for t in tasks]),
        bash_array("TRAINS", [int(t.trains) for t in tasks]),
        f"RUNS={shlex.quote(str(runs_root))}",
        f"PY={shlex.quote(python)}",
        "# Each stage in its own environment (resolved at submit time; app/env/stage_env.py).",
        f"TRAIN_PY={shlex.quote(stage_py['train'])}",
        f"EVAL_PY={shlex.quote(stage_py['eval'])}",
        'export REPRO_TRAIN_PYTHON="$TRAIN_PY" REPRO_EVAL_PYTHON="$EVAL_PY"',
        f"cd {shlex.quote(str(workdir))}",
        "export TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1  # library progress bars garble log files",
        *(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
        TASK_BODY.replace("{exit_code}", str(EXIT_CODE)).rstrip(),
        (distributed_part(opts) if opts.distributed else SINGLE).rstrip(),
        EVAL.rstrip(),
        TAIL.rstrip(),
    ]
    return "\n".join(p for p in parts if p) + "\n"


def task_for(path: Path, runs_root: Path) -> tuple[RunSpec, Task]:
    spec = load_spec(path)
    run_dir = find_run_dir(spec, runs_root)
    return spec, Task(path.resolve(), run_dir, spec.train is not None)


def submissions(runs_root: Path) -> dict[str, dict]:
    """The latest submission of each run directory (from .slurm/submissions.jsonl)."""
    path = runs_root / SLURM_DIR / "submissions.jsonl"
    out = {}
    for lineno, rec in enumerate(read_jsonl(path), start=1):  # a torn last append is dropped
        if not all(isinstance(rec.get(k), str) for k in ("job_id", "run_dir")):
            raise UserError(f"{path}:{lineno}: expected string fields job_id and run_dir")
        out[rec["run_dir"]] = rec
    return out


def queue_states() -> dict[str, str]:
    """Job id (`123_4` for array tasks) → state for every job Slurm still knows; {} without squeue."""
    if not shutil.which("squeue"):
        return {}
    proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True)
    return dict(line.split(maxsplit=1) for line in proc.stdout.splitlines() if line.strip())


def select_tasks(spec_paths: list[Path], runs_root: Path, log) -> list[tuple[RunSpec, Task]]:
    """Specs whose run is neither complete nor already queued in Slurm."""
    queued, active = submissions(runs_root), queue_states()
    chosen = []
    for path in spec_paths:
        spec, task = task_for(path, runs_root)
        state = RunDir(task.run_dir).status()["state"]
        job = queued.get(str(task.run_dir), {}).get("job_id")
        if state == "complete":
            log(f"skip {spec.name}: complete")
        elif job in active:
            log(f"skip {spec.name}: already queued as {job} ({active[job].lower()})")
        else:
            chosen.append((spec, task))
    return chosen


def submit(script: str, runs_root: Path, tasks: list[Task]) -> str:
    """Save the script under RUNS/.slurm/, sbatch it, record one submission line per task; returns the job id."""
    if not shutil.which("sbatch"):
        raise UserError("sbatch not found: run on a Slurm login node (or use --dry-run)")
    out_dir = runs_root / SLURM_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"sweep-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.sbatch"
    path.write_text(script)
    proc = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"sbatch {path}: {proc.stderr.strip() or proc.stdout.strip()}")
    job = proc.stdout.strip().split(";")[0]
    with (out_dir / "submissions.jsonl").open("a") as fh:
        for i, t in enumerate(tasks):
            rec = {"job_id": f"{job}_{i}", "run_dir": str(t.run_dir), "spec": str(t.spec_path), "script": str(path)}
            fh.write(json.dumps({**rec, "submitted_at": now()}) + "\n")
    return job


def sweep_slurm(spec_paths: list[Path], runs_root: Path, opts: SlurmOptions, dry_run: bool, gpu: str, log) -> str:
    """Submit the unfinished specs as one array (or print the script); returns the job id or ''."""
    runs_root = runs_root.resolve()
    check_options(opts)  # before anything is read or written
    limit = parse_time(opts.time) if opts.time else None
    if limit is not None and opts.signal_before_s is not None and opts.signal_before_s >= limit:
        raise UserError(f"--signal-before {opts.signal_before_s} s must be shorter than --time {opts.time}")
    chosen = select_tasks(spec_paths, runs_root, log)
    estimates = plan_estimates(chosen, gpu, log) if chosen else []
    if opts.time:
        warn_time(estimates, opts, gpu, log)
    if not chosen:
        log("nothing to submit: every run is complete or queued")
        return ""
    if opts.signal_before_s is None:
        lead = choose_lead(estimates, gpu_count(opts), lambda: measure(runs_root / SLURM_DIR), log)
        check_within(lead, limit, opts.time)
        opts = replace(opts, signal_before_s=lead)
    tasks = [t for _, t in chosen]
    envs = {stage: resolve_stage_env(stage).python for stage in STAGES}
    script = batch_script(tasks, opts, runs_root, envs["eval"], Path.cwd(), envs)
    if dry_run:
        print(script, end="")
        return ""
    job = submit(script, runs_root, tasks)
    for i, (spec, _) in enumerate(chosen):
        log(f"submitted {spec.name} as {job}_{i}")
    return job


def gpu_count(opts: SlurmOptions) -> int:
    return max(1, opts.nodes * (opts.gpus_per_node or opts.gpus_per_task or 1))


def plan_estimates(chosen: list[tuple[RunSpec, Task]], gpu: str, log) -> list[dict]:
    """`repro plan`'s estimate of each chosen spec (its warnings on stderr, once each)."""
    from app.launch.plan import estimate, spec_set, warnings

    named = spec_set([(task.spec_path, spec) for spec, task in chosen])
    estimates = [estimate(spec, gpu, named) for spec, _ in chosen]
    for line in warnings(estimates):
        log(line)
    return estimates


def warn_time(estimates: list[dict], opts: SlurmOptions, gpu: str, log) -> None:
    """Warn (stderr) for each task whose estimated GPU time exceeds --time, or cannot be estimated."""
    limit = parse_time(opts.time)
    gpus = gpu_count(opts)
    for est in estimates:
        if est["gpu_hours"] is None:
            log(f"warning: {est['name']}: size of model {est['model']} unknown; --time {opts.time} not checked")
            continue
        hours = est["gpu_hours"] / gpus
        if hours * 3600 > limit:
            log(
                f"warning: {est['name']}: estimated {hours:.2f} h on {gpus} {gpu} GPU(s) > --time {opts.time}; "
                "it will be checkpointed and requeued at the limit"
            )
