#!/usr/bin/env bash
# make test-slurm: a real single-node Slurm cluster (slurmctld + slurmd + munged) in a temp dir.
# Submits three tiny specs with `repro sweep --launcher slurm`, sends one task the pre-time-limit
# signal mid-training and requeues another with `scontrol requeue`, then checks: all three complete,
# the interrupted ones byte-identical to runs made without interruption, a resubmission skips all
# three, `repro status` shows them complete. Each stage runs in its own environment: .venv-train and
# .venv-eval (built from the CPU stage locks by `make stage-envs` if missing); every run's env.json
# must say so. Daemons are stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=$(cd "${BIN:-.venv/bin}" && pwd)
export PATH="$BIN:$PATH" PYTHONPATH="$REPO"
STEPS=${STEPS:-60}

say() { echo "[test-slurm $(date -u +%H:%M:%S)] $*"; }
fail() { echo "[test-slurm] FAILED: $*" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  [ "$(id -u)" = 0 ] || fail "slurm-wlm/munge missing and not root: apt-get install slurm-wlm munge"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge
fi

# Each stage in its own venv, from its own lock: the sweep resolves them at submit time.
if [ ! -f .venv-train/.installed ] || [ ! -f .venv-eval/.installed ]; then
  say "building the CPU stage venvs (make stage-envs STAGE_ENVS=cpu)"
  make --no-print-directory stage-envs STAGE_ENVS=cpu
fi
say "stage environments: .venv-train ($(cat .venv-train/.installed)), .venv-eval ($(cat .venv-eval/.installed))"

WORK=$(mktemp -d /tmp/repro-slurm.XXXXXX)
chmod 755 "$WORK"  # munged runs as `munge` and must reach its directory
export SLURM_CONF=$WORK/slurm.conf
stop_daemons() {
  local rc=$?
  scancel --quiet --user="$(id -un)" 2>/dev/null || true
  local pids=()
  for pidfile in "$WORK/slurmd.pid" "$WORK/slurmctld.pid" "$WORK/munge/munged.pid"; do
    [ -s "$pidfile" ] && pids+=("$(cat "$pidfile")") && kill "${pids[-1]}" 2>/dev/null || true
  done
  # wait for them to exit: slurmctld still writes its state dir while shutting down
  for _ in $(seq 50); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.2
  done
  if [ "$rc" != 0 ]; then
    say "logs kept in $WORK"; tail -n 20 "$WORK"/*.log "$WORK"/runs/*/logs/*.log 2>/dev/null || true
  else
    rm -rf "$WORK" 2>/dev/null || true  # never turn a passed run into a failure over a temp dir
  fi
}
trap stop_daemons EXIT

# munge: private key, socket, log and pid under $WORK, owned by the munge user (it refuses others).
mkdir -p "$WORK/munge"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$WORK/munge" && chmod 755 "$WORK/munge" && chmod 400 "$WORK/munge/munge.key"
SOCKET=$WORK/munge/munge.socket
runuser -u munge -- /usr/sbin/munged --key-file="$WORK/munge/munge.key" --socket="$SOCKET" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/munged.seed"
munge -S "$SOCKET" -n | unmunge -S "$SOCKET" >/dev/null || fail "munge does not work"

HOST=$(hostname -s)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024) - 2048}' /proc/meminfo)
mkdir -p "$WORK/state" "$WORK/spool"
cat >"$SLURM_CONF" <<EOF
ClusterName=repro-ci
SlurmctldHost=$HOST
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
JobRequeue=1
KillWait=15
MpiDefault=none
NodeName=$HOST CPUs=$(nproc) RealMemory=$MEM_MB State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld
slurmd
for _ in $(seq 60); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo -h -o %t | grep -q idle || fail "the node never became idle: $(sinfo 2>&1)"
say "cluster up: $(sinfo -h -o '%P %D %t %c CPUs')"

python "$REPO/slurm/make_tiny.py" "$WORK" "$STEPS" >/dev/null
SPECS=("$WORK/slurm_a.json" "$WORK/slurm_b.json" "$WORK/slurm_c.json")
RUNS=$WORK/runs
SWEEP=(repro sweep "${SPECS[@]}" --launcher slurm --runs-dir "$RUNS" --time 20:00 --signal-before 60
  --cpus-per-task 1 --mem 3G)

out=$("${SWEEP[@]}")
echo "$out"
JOB=$(sed -n 's/^SUBMITTED job array \([0-9]*\).*/\1/p' <<<"$out")
[ -n "$JOB" ] || fail "no job id in: $out"

run_dir() { ls -d "$RUNS/$1"-*; }
wait_steps() {  # wait_steps NAME N: until the run has logged N training steps
  for _ in $(seq 600); do
    [ "$(cat "$RUNS/$1"-*/train_log.jsonl 2>/dev/null | wc -l)" -ge "$2" ] && return 0
    sleep 0.5
  done
  fail "$1 never reached step $2"
}
# Task 1: the signal Slurm sends before the time limit (--signal=B:USR1@…): checkpoint, requeue.
wait_steps slurm_b 12
scancel --batch --signal=USR1 "${JOB}_1"
say "sent SIGUSR1 to ${JOB}_1 at step $(wc -l <"$(run_dir slurm_b)/train_log.jsonl")"
# Task 2: a hard requeue, as on preemption or node failure: resume from the periodic checkpoint.
wait_steps slurm_c 12
scontrol requeue "${JOB}_2"
say "requeued ${JOB}_2 at step $(wc -l <"$(run_dir slurm_c)/train_log.jsonl")"

wait_job() {  # wait_job ID: until Slurm no longer lists the job (or any of its array tasks)
  for _ in $(seq 1200); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 1
  done
  fail "jobs still queued: $(squeue -j "$1")"
}
wait_job "$JOB"
say "array $JOB finished"

# Uninterrupted references, made outside Slurm.
for name in slurm_b slurm_c; do
  repro run "$WORK/$name.json" --runs-dir "$WORK/ref" --no-progress >/dev/null 2>&1 || fail "reference $name"
done

python - "$RUNS" "$WORK/ref" <<'EOF' || fail "checks above"
import json, sys
from pathlib import Path
runs, ref = Path(sys.argv[1]), Path(sys.argv[2])
SAME = ("checkpoint/model.safetensors", "predictions.jsonl", "spec.json", "data.json")
for run in sorted(runs.glob("slurm_*")):
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "complete", (run.name, status)
    assert status["slurm"]["job_id"].split("_")[1] in "012", status["slurm"]
    logs = list((run / "logs").glob("slurm-*.log"))
    assert len(logs) == 1 and "train step" in logs[0].read_text(), f"{run.name}: no plain progress lines"
    print(f"{run.name}: complete, job {status['slurm']['job_id']}, restarts {status['slurm']['restart_count']}")
for name, how in (("slurm_b", "SIGUSR1: time limit near"), ("slurm_c", None)):
    run, other = next(runs.glob(name + "-*")), next(ref.glob(name + "-*"))
    metrics = json.loads((run / "train_metrics.json").read_text())
    status = json.loads((run / "status.json").read_text())
    assert status["slurm"]["restart_count"] >= 1, f"{name} was not requeued: {status['slurm']}"
    assert metrics["resumed_from_step"] > 0, f"{name} did not resume: {metrics['resumed_from_step']}"
    log = next((run / "logs").glob("slurm-*.log")).read_text()
    assert how is None or how in log, f"{name}: {how!r} not in its log"
    a = json.loads((run / "manifest.json").read_text())["files"]
    b = json.loads((other / "manifest.json").read_text())["files"]
    diff = [f for f in SAME if a[f] != b[f]]
    assert not diff, f"{name}: differs from the uninterrupted run in {diff}"
    losses = lambda d: [json.loads(x)["loss"] for x in (d / "train_log.jsonl").read_text().splitlines()]
    assert losses(run) == losses(other), f"{name}: losses differ"
    print(f"{name}: resumed from step {metrics['resumed_from_step']}, byte-identical to the uninterrupted run")
EOF

again=$("${SWEEP[@]}" 2>&1)
echo "$again"
[ "$(grep -c ': complete$' <<<"$again")" = 3 ] && grep -q "nothing to submit" <<<"$again" \
  || fail "resubmission did not skip all three"

# Multi-process training: torchrun under srun with the rendezvous from the Slurm environment.
out=$(repro sweep "$WORK/slurm_a.json" --launcher slurm --runs-dir "$WORK/dist" --procs-per-node 2 \
  --cpus-per-task 2 --mem 4G --time 20:00 --signal-before 60)
DJOB=$(sed -n 's/^SUBMITTED job array \([0-9]*\).*/\1/p' <<<"$out")
[ -n "$DJOB" ] || fail "no job id in: $out"
wait_job "$DJOB"
python - "$WORK/dist" <<'EOF' || fail "torchrun under srun"
import json, sys
from pathlib import Path
run = next(Path(sys.argv[1]).glob("slurm_a-*"))
assert json.loads((run / "status.json").read_text())["state"] == "complete"
assert json.loads((run / "train_metrics.json").read_text())["world_size"] == 2
assert "rendezvous" in next((run / "logs").glob("slurm-*.log")).read_text()
print(f"{run.name}: trained by torchrun under srun, world size 2")
EOF

# Every attempt of every stage ran in its stage venv, installed from its stage lock, without drift.
python - "$REPO" "$RUNS" "$WORK/dist" "$WORK/ref" <<'EOF' || fail "stage environments"
import json, sys
from pathlib import Path
repo = Path(sys.argv[1])
venv = {s: repo / f".venv-{s}" for s in ("train", "eval")}
want = {s: (str(v / "bin/python"), str(repo / (v / ".installed").read_text().strip())) for s, v in venv.items()}
for root in sys.argv[2:]:
    for run in sorted(Path(root).glob("slurm_*")):
        envs = json.loads((run / "env.json").read_text())
        for stage, (python, lock) in want.items():
            for a in envs[stage]:
                got = (a["stage_env"]["python"], a["stage_env"]["lock"], a["lockfile"]["path"])
                assert got == (python, lock, lock), f"{run}: {stage} attempt {a['attempt']}: {got}"
                assert a["lockfile"]["matches"], f"{run}: {stage} drifts from {lock}: {a['lockfile']['drift']}"
        print(f"{root}/{run.name}: {len(envs['train'])} train attempt(s) in {want['train'][0]}, eval in {want['eval'][0]}")
EOF

# A requeue after a stale lock left by a "dead node" (slurm/dead_node.sh).
source "$REPO/slurm/dead_node.sh"
dead_node_case

table=$(repro status "$RUNS")
echo "$table"
grep -q "^3 run(s): 3 complete" <<<"$table" || fail "repro status does not show three complete runs"
say "PASSED"
