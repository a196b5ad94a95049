"""The Slurm launcher's pure parts: the batch script, --time parsing, skipping complete runs."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from app.errors import UserError
from app.launch.lead_time import DEFAULT_S, MARGIN_S, Speeds, check_within, checkpoint_bytes, choose_lead, lead_seconds
from app.launch.plan import KNOWN
from app.launch.slurm import (
    SlurmOptions,
    Task,
    batch_script,
    distributed_part,
    parse_time,
    rdzv_port,
    sbatch_lines,
    select_tasks,
    task_for,
)
from app.rundir.run_dir import RunDir
from tests.helpers import repro


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), ("5:30", 330), ("2:00:00", 7200), ("1-0", 86400), ("1-2:30", 95400), ("0-0:0:45", 45)],
)
def test_parse_time_reads_every_slurm_format(text, seconds):
    assert parse_time(text) == seconds


def test_parse_time_names_the_option_on_bad_input():
    with pytest.raises(UserError, match="--time '1h'"):
        parse_time("1h")


def tasks(tmp_path: Path, n: int = 2) -> list[Task]:
    return [Task(tmp_path / f"s{i}.json", tmp_path / "runs" / f"s{i}-0000000{i}", True) for i in range(n)]


def test_header_carries_every_cluster_option(tmp_path):
    opts = SlurmOptions(
        partition="gpu", account="lab", time="4:00:00", gres="gpu:a100:1", cpus_per_task=8, mem="64G",
        max_parallel=3, extra=("--qos=high", "constraint=h100"),
    )  # fmt: skip
    lines = sbatch_lines(opts, 5, tmp_path)
    for want in ("--array=0-4%3", "--partition=gpu", "--account=lab", "--time=4:00:00", "--gres=gpu:a100:1",
                 "--cpus-per-task=8", "--mem=64G", "--requeue", "--signal=B:USR1@300", "--qos=high",
                 "--constraint=h100", f"--output={tmp_path}/%A_%a.out"):  # fmt: skip
        assert f"#SBATCH {want}" in lines
    assert not any("nodes" in ln for ln in lines)  # single-process tasks leave node counts alone


def test_single_process_script_trains_then_runs_repro_run_and_is_valid_bash(tmp_path):
    script = batch_script(tasks(tmp_path), SlurmOptions(), tmp_path / "runs", "/venv/bin/python", tmp_path)
    assert script.startswith("#!/bin/bash\n")
    assert 'step "$TRAIN_PY" -m app train "$SPEC" --runs-dir "$RUNS" --resume' in script
    assert 'step "$EVAL_PY" -m app run "$SPEC" --runs-dir "$RUNS"' in script
    assert "TRAIN_PY=/venv/bin/python\nEVAL_PY=/venv/bin/python\n" in script  # one venv: both stages in it
    assert "torch.distributed.run" not in script
    assert f"  {tmp_path}/s1.json\n" in script and "scontrol requeue" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_multi_node_script_starts_torchrun_under_srun_with_slurm_rendezvous(tmp_path):
    opts = SlurmOptions(nodes=2, gpus_per_node=8)
    script = batch_script(tasks(tmp_path), opts, tmp_path / "runs", "/venv/bin/python", tmp_path)
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gpus-per-node=8" in script
    assert "#SBATCH --ntasks-per-node=1" in script
    assert 'HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in script
    assert '--nnodes="$SLURM_JOB_NUM_NODES" --nproc-per-node=8' in script
    assert '--rdzv-endpoint="$HEAD:$PORT"' in script and "-m app train" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


STAGE_PYTHONS = {"train": "/shared/.venv-train/bin/python", "eval": "/shared/.venv-eval/bin/python"}


@pytest.mark.parametrize("opts", [SlurmOptions(), SlurmOptions(nodes=2, gpus_per_node=2)], ids=["single", "torchrun"])
def test_each_stage_runs_with_its_own_python(opts, tmp_path):
    """The script's stage part run in bash (srun, scontrol and the stages stubbed): train with TRAIN_PY,
    plain or under torchrun, then `repro run` (the evaluation) with EVAL_PY."""
    script = batch_script(tasks(tmp_path), opts, tmp_path / "runs", STAGE_PYTHONS["eval"], tmp_path, STAGE_PYTHONS)
    variables = script.split("set -uo pipefail", 1)[1].split("\ncd ", 1)[0]
    stages = script.split('  return "$rc"\n}\n', 1)[1].split('\nif [ "$requeue" = 1 ]', 1)[0]
    stubs = f"""
set -u
SPEC=s.json requeue=0
scontrol() {{ printf 'node1\\n'; }}
state_of() {{ echo new; }}
say() {{ :; }}
step() {{ echo "$REPRO_STAGE_PYTHON|$*" >>{tmp_path}/steps; }}
"""
    env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "7", "SLURM_JOB_ID": "7"}
    env |= {"SLURM_JOB_NODELIST": "node1", "SLURM_JOB_NUM_NODES": "1"}
    proc = subprocess.run(["bash", "-c", variables + stubs + stages], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    train, evaluate = (tmp_path / "steps").read_text().splitlines()
    assert train.startswith(STAGE_PYTHONS["train"] + "|") and f"{STAGE_PYTHONS['train']} -m " in train
    assert " -m app train s.json " in train and "--resume" in train
    assert evaluate == f"{STAGE_PYTHONS['eval']}|{STAGE_PYTHONS['eval']} -m app run s.json --runs-dir {tmp_path}/runs"
    assert 'export REPRO_TRAIN_PYTHON="$TRAIN_PY"' in script  # for a `repro run` that still finds training to do


def run_training_part(opts: SlurmOptions, tmp_path: Path, **env: str) -> tuple[str, list[str], str]:
    """Run the script's torchrun part in bash with srun's launch recorded: (stdout, the command that
    `step` was given, SRUN_CPUS_PER_TASK as the command would see it)."""
    stubs = f"""
set -u
TRAINS=(1 1 1 1 1 1 1 1) TRAIN_PY=/venv/bin/python SPEC=s.json RUNS=runs requeue=1  # requeue: no eval step
scontrol() {{ printf 'node1\\nnode2\\n'; }}
state_of() {{ echo new; }}
say() {{ echo "say: $*"; }}
step() {{ printf '%s\\n' "$@" >{tmp_path}/argv; echo "${{SRUN_CPUS_PER_TASK:-unset}}" >{tmp_path}/cpus; }}
"""
    base = {"PATH": "/usr/bin:/bin", "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_NUM_NODES": "2"}
    proc = subprocess.run(
        ["bash", "-c", stubs + distributed_part(opts)], env={**base, **env}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, (tmp_path / "argv").read_text().splitlines(), (tmp_path / "cpus").read_text().strip()


def test_srun_gets_the_jobs_cpus_per_task(tmp_path):
    ids = {"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "0", "SLURM_JOB_ID": "7"}
    opts = SlurmOptions(nodes=2, gpus_per_node=4, cpus_per_task=16)
    _, argv, cpus = run_training_part(opts, tmp_path, **ids, SLURM_CPUS_PER_TASK="16")
    assert argv[:4] == ["srun", "--kill-on-bad-exit=1", "--ntasks-per-node=1", "--cpus-per-task=16"], argv
    assert cpus == "16"  # any srun the work starts itself gets it too
    _, argv, _ = run_training_part(opts, tmp_path, **ids, SLURM_CPUS_PER_TASK="12")  # an edited #SBATCH line
    assert "--cpus-per-task=12" in argv
    _, argv, cpus = run_training_part(SlurmOptions(nodes=2, gpus_per_node=4), tmp_path, **ids)
    assert not any(a.startswith("--cpus-per-task") for a in argv) and cpus == "unset"  # the cluster's default


def test_rendezvous_port_follows_the_array_job_and_task(tmp_path):
    ports = [rdzv_port(123456, task) for task in range(1001)]  # Slurm's default MaxArraySize
    assert len(set(ports)) == len(ports) and all(20000 <= p < 32000 for p in ports)  # below ephemeral ports
    assert rdzv_port(123457, 0) != rdzv_port(123456, 0)
    opts = SlurmOptions(nodes=2, gpus_per_node=2)
    for job, task in ((123456, 0), (123456, 5), (98765432, 7)):
        env = {"SLURM_ARRAY_JOB_ID": str(job), "SLURM_ARRAY_TASK_ID": str(task), "SLURM_JOB_ID": str(job + task)}
        out, argv, _ = run_training_part(opts, tmp_path, **env)
        port = rdzv_port(job, task)
        assert f"--rdzv-endpoint=node1:{port}" in argv and f"rendezvous node1:{port}" in out, (argv, out)


def test_complete_runs_are_not_submitted(tiny_spec, tmp_path):
    done, todo = tiny_spec(name="done"), tiny_spec(name="todo")
    runs = tmp_path / "runs"
    _, task = task_for(done, runs)
    RunDir(task.run_dir).path.mkdir(parents=True)
    (task.run_dir / "status.json").write_text(json.dumps({"state": "complete", "stages": {}}))
    said = []
    chosen = select_tasks([done, todo], runs, said.append)
    assert [spec.name for spec, _ in chosen] == ["todo"]
    assert said == ["skip done: complete"]


def test_dry_run_prints_the_script_and_warns_when_time_is_below_the_plan(tiny_spec, tmp_path):
    spec = tiny_spec(name="big", train={"max_steps": 100000})
    args = ["--launcher", "slurm", "--dry-run", "--time", "1", "--signal-before", "10", "--gpu", "a10"]
    out = repro("sweep", str(spec), "--runs-dir", str(tmp_path / "runs"), *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("#!/bin/bash") and "#SBATCH --array=0-0" in out.stdout
    assert "warning: big: estimated" in out.stderr and "> --time 1" in out.stderr
    assert not (tmp_path / "runs" / ".slurm").exists()  # nothing submitted, nothing written


def test_signal_must_come_before_the_time_limit(tiny_spec, tmp_path):
    out = repro("sweep", str(tiny_spec()), "--launcher", "slurm", "--dry-run", "--time", "2", "--signal-before", "300")
    assert out.returncode == 2 and "--signal-before 300" in out.stderr


def test_lead_time_arithmetic_on_a_worked_example():
    # Qwen2.5-Math-1.5B: 1.54e9 parameters, 12 bytes each (fp32 weights + AdamW's two moments).
    params = KNOWN["Qwen/Qwen2.5-Math-1.5B"].params
    assert checkpoint_bytes(params) == 12 * params and 18e9 < checkpoint_bytes(params) < 19e9
    # 12 GB at 200 MB/s write+fsync (60 s) and 1 GB/s sha256 (12 s): 1.5 x 72 + 2 s step + 60 s margin.
    assert lead_seconds(12 * 10**9, Speeds(200e6, 1e9), step_s=2.0) == 170
    assert lead_seconds(12 * 10**9, Speeds(100e6, 1e9), step_s=2.0) == 260  # half the write speed: +90 s
    assert lead_seconds(0, Speeds(1, 1)) == MARGIN_S
    with pytest.raises(ValueError):
        lead_seconds(1, Speeds(0, 1e9))  # a failed measurement is never a zero lead


@pytest.mark.parametrize(("lead", "limit", "refused"), [(170, 169, True), (170, 170, True), (170, 171, False)])
def test_a_lead_not_shorter_than_the_time_limit_is_refused(lead, limit, refused):
    if refused:
        with pytest.raises(UserError, match=f"--time T: the checkpoint needs the signal {lead} s before the limit"):
            check_within(lead, limit, "T")
    else:
        check_within(lead, limit, "T")
    check_within(lead, None, None)  # no --time: nothing to compare with


def test_the_lead_follows_the_largest_trained_model_and_measures_only_when_needed():
    measured, said = [], []

    def measure():
        measured.append(1)
        return Speeds(200e6, 1e9)

    est = {"model": "m", "params": 10**9, "steps": 100, "train_hours": 0.1}
    small = {**est, "model": "s", "params": 10**6}
    lead = choose_lead([small, est], 1, measure, said.append)
    assert lead == lead_seconds(checkpoint_bytes(10**9), Speeds(200e6, 1e9), step_s=3.6) and measured == [1]
    assert said == [
        f"signal lead {lead} s = 1.5 x (12.00 GB resume checkpoint / 200 MB/s write+fsync + sha256 "
        "at 1000 MB/s) + 3.6 s for the step under way + 60 s margin (--signal-before S overrides)"
    ]
    assert choose_lead([{**est, "steps": 0}], 1, None, said.append) == MARGIN_S  # eval only: no measurement
    unknown = {**est, "model": "who", "params": None, "train_hours": None}
    assert choose_lead([unknown], 1, None, said.append) == DEFAULT_S
    assert said[-1] == f"signal lead {DEFAULT_S} s: size of who unknown, at least the default {DEFAULT_S} s"


def test_dry_run_measures_the_runs_file_system_and_writes_the_lead_into_the_script(tiny_spec, tmp_path):
    runs = tmp_path / "runs"
    out = repro("sweep", str(tiny_spec()), "--launcher", "slurm", "--dry-run", "--runs-dir", str(runs), "--time", "30")
    assert out.returncode == 0, out.stderr
    lead = re.search(r"^signal lead (\d+) s = 1\.5 x \(0\.\d+ GB resume checkpoint / \d+ MB/s write", out.stderr, re.M)
    assert lead, out.stderr
    assert f"#SBATCH --signal=B:USR1@{lead[1]}\n" in out.stdout
    assert not (runs / ".slurm").exists() and not list(tmp_path.rglob(".write-speed.*"))  # the probe is gone
    short = repro("sweep", str(tiny_spec()), "--launcher", "slurm", "--dry-run", "--runs-dir", str(runs), "--time", "1")
    assert short.returncode == 2 and short.stdout == ""
    assert re.fullmatch(
        r"error: --time 1: the checkpoint needs the signal \d+ s before the limit, .*", short.stderr.splitlines()[-1]
    )
