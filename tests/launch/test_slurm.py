"""The Slurm launcher's pure parts: the batch script, --time parsing, skipping complete runs."""

import json
import subprocess
from pathlib import Path

import pytest

from app.errors import UserError
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
    out = repro("sweep", str(tiny_spec()), "--launcher", "slurm", "--dry-run", "--time", "2")
    assert out.returncode == 2 and "--signal-before 300" in out.stderr
