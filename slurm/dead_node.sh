# Sourced by slurm/ci.sh (uses its WORK, say, fail, wait_steps, wait_job): a stale lock from a dead node.
#
# With the O_EXCL lock file (REPRO_LOCK=file, the lock where flock fails: Lustre noflock, NFS),
# slurm_a and slurm_b train part-way, then every process of their job dies by SIGKILL, as on a node
# that dies: each leaves its lock file. slurm_a's is rewritten as its holder on another host would
# have left it, naming that job, which has really ended in this Slurm; slurm_b's names a job that is
# still running (a sleeper). Resubmitted, slurm_a takes the lock over (its log says why) and completes
# byte-identical to an uninterrupted run; slurm_b exits with the one-line "in use" error, its run untouched.

# snapshot RUN_DIR: every file but the Slurm logs, with its sha256.
snapshot() {
  python - "$1" <<'EOF'
import hashlib, sys
from pathlib import Path
run = Path(sys.argv[1])
for p in sorted(run.rglob("*")):
    if p.is_file() and "logs" not in p.relative_to(run).parts:
        print(p.relative_to(run), hashlib.sha256(p.read_bytes()).hexdigest())
EOF
}

# sweep_file_lock RUNS: submit slurm_a and slurm_b with REPRO_LOCK=file exported to the job; prints the job id.
sweep_file_lock() {
  local out
  out=$(REPRO_LOCK=file repro sweep "$WORK/slurm_a.json" "$WORK/slurm_b.json" --launcher slurm --runs-dir "$1" \
    --time 20:00 --signal-before 60 --cpus-per-task 1 --mem 3G)
  sed -n 's/^SUBMITTED job array \([0-9]*\).*/\1/p' <<<"$out"
}

plant_dead_node_locks() {  # plant_dead_node_locks RUNS SLEEPER_JOB
  python - "$1" "$2" <<'EOF' || fail "planting the dead node's locks"
import re, sys
from pathlib import Path
from app.rundir.lock_file import gone
stale, sleeper = Path(sys.argv[1]), sys.argv[2]
for name, job in (("slurm_a", None), ("slurm_b", sleeper)):
    lock = next(stale.glob(name + "-*")) / ".lock"
    m = re.fullmatch(r"pid (\d+) on \S+ slurm job (\d+) restart 0\n", lock.read_text())
    assert m, f"{name}: the killed task left no lock file naming its job: {lock.read_text()!r}"
    lock.write_text(f"pid {m[1]} on node-that-died slurm job {job or m[2]} restart 0\n")
    print(f"{name}: lock names {'the running job' if job else 'its killed job'} {job or m[2]} on node-that-died")
# And a job this Slurm has forgotten (squeue: "Invalid job id specified") is proven gone as well.
assert gone("pid 1 on node-that-died slurm job 999999 restart 0") == "Slurm job 999999 has ended (gone)"
EOF
}

check_taken_over() {  # check_taken_over RUNS REF
  python - "$1" "$2" <<'EOF' || fail "slurm_a after the dead node"
import json, sys
from pathlib import Path
run, ref = (next(Path(d).glob("slurm_a-*")) for d in sys.argv[1:])
assert json.loads((run / "status.json").read_text())["state"] == "complete"
assert not (run / ".lock").exists(), "the O_EXCL lock file outlived its holder"  # flock's file would stay
assert json.loads((run / "train_metrics.json").read_text())["resumed_from_step"] > 0, "did not resume"
a, b = (json.loads((d / "manifest.json").read_text())["files"] for d in (run, ref))
diff = [f for f in ("checkpoint/model.safetensors", "predictions.jsonl") if a[f] != b[f]]
assert not diff, f"differs from the uninterrupted run in {diff}"
print(f"{run.name}: dead node's lock taken over, resumed, byte-identical to the uninterrupted run")
EOF
}

# kill_like_a_dead_node JOB: SIGKILL every process of the job's tasks at once, as a node that dies
# leaves them (no SIGTERM, no trap: their lock files stay). `scancel --signal=KILL` would not do:
# Slurm turns it into a cancel, which sends SIGTERM first and lets the work release its lock.
kill_like_a_dead_node() {
  local raw pids=()
  for raw in $(squeue -h -r -j "$1" -o %A); do
    pids+=($(scontrol listpids "$raw" | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}'))
  done
  [ "${#pids[@]}" -gt 0 ] || fail "no processes listed for job $1"
  kill -KILL "${pids[@]}"
}

dead_node_case() {
  local stale=$WORK/stale job sleeper before
  job=$(sweep_file_lock "$stale")
  [ -n "$job" ] || fail "no job id from the file-lock sweep"
  RUNS=$stale wait_steps slurm_a 12
  RUNS=$stale wait_steps slurm_b 12
  kill_like_a_dead_node "$job"
  wait_job "$job"
  sleeper=$(sbatch --parsable --job-name=holder --mem=50M --time=10 --output="$WORK/holder-%j.out" --wrap "sleep 600")
  for _ in $(seq 60); do [ "$(squeue -h -j "$sleeper" -o %T)" = RUNNING ] && break; sleep 1; done
  plant_dead_node_locks "$stale" "$sleeper"
  before=$(snapshot "$(ls -d "$stale"/slurm_b-*)")
  job=$(sweep_file_lock "$stale")
  [ -n "$job" ] || fail "no job id from the resubmission"
  wait_job "$job"
  [ "$(snapshot "$(ls -d "$stale"/slurm_b-*)")" = "$before" ] || fail "slurm_b's run changed under a live holder's lock"
  grep -q "^error: .*: in use by another process (pid [0-9]* on node-that-died slurm job $sleeper restart 0)$" \
    "$stale"/slurm_b-*/logs/slurm-*.log || fail "slurm_b: no one-line 'in use' error naming job $sleeper"
  scancel "$sleeper"
  grep "stale lock of pid [0-9]* on node-that-died .* taken over: Slurm job [0-9]* has ended" \
    "$stale"/slurm_a-*/logs/slurm-*.log || fail "slurm_a: no takeover line in its log"
  repro run "$WORK/slurm_a.json" --runs-dir "$WORK/ref" --no-progress >/dev/null 2>&1 || fail "reference slurm_a"
  check_taken_over "$stale" "$WORK/ref"
  say "dead node: its lock taken over once its job ended, refused while the named job runs"
}
