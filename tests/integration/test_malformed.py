"""Malformed input is one `error:` line and exit 2 (1 for a damaged run file), with nothing written.

Specs (seed range, budgets, empty stop strings, non-finite floats, duplicate keys, over-long
integers, deep nesting), run files of the wrong shape (manifest, status, metrics), bad `--out`
targets, sbatch option values and malformed predictions. Commands run in-process (typer's runner) on
copies of a committed CPU-study run, so the file stays fast.
"""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import preempt
from app.cli import app
from app.errors import UserError
from app.launch.slurm import SlurmOptions, batch_script, check_options
from app.spec.run_spec import MAX_SEED, MAX_TOKENS
from tests.helpers import snapshot

REPO = Path(__file__).resolve().parents[2]
RUN = next((REPO / "docs" / "cpu_study" / "runs").glob("cpu_orig_128-*"))
BIG = "9" * 5000  # longer than Python's int-to-string limit (4300 digits)


def cli(*args: str):
    """`repro ARGS` in this process: (exit code, stdout, stderr lines)."""
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr.strip().splitlines()


def same_but_lock(before: dict, after: dict) -> bool:
    """Equal snapshots, ignoring the `.lock` a refused stage command takes (as the other tests do)."""
    return {k: v for k, v in after.items() if k != ".lock"} == before


@pytest.fixture(autouse=True)
def _no_signal_handlers(monkeypatch):
    monkeypatch.setattr(preempt, "install", lambda: None)  # train/eval in-process: leave pytest's handlers


# --- specs -------------------------------------------------------------------------------------

SPEC = {"name": "x", "train": {"epochs": 1}}


def with_train(**fields) -> str:
    return json.dumps({"name": "x", "train": {"epochs": 1, **fields}})


SPECS = {
    "seed_above_32_bits": (json.dumps({"name": "x", "seed": MAX_SEED + 1}), "seed: Input should be less than"),
    "seed_negative": (json.dumps({"name": "x", "seed": -1}), "seed: Input should be greater than"),
    "subset_seed_above_32_bits": (json.dumps({"name": "x", "data": {"subset_seed": 2**40}}), "data.subset_seed"),
    "max_tokens_1e15": ('{"name": "x", "train": {"max_tokens": 1e15}}', "train.max_tokens: Input should be less"),
    "max_steps_1e15": ('{"name": "x", "train": {"max_steps": 1e15}}', "train.max_steps: Input should be less"),
    "empty_stop": (json.dumps({"name": "x", "eval": {"stop": ["</answer>", ""]}}), "eval.stop.1: String should"),
    "infinity": (with_train(max_grad_norm=1).replace("1}}", "Infinity}}"), "Infinity is not a number JSON allows"),
    "minus_infinity": (with_train(max_grad_norm=1).replace("1}}", "-Infinity}}"), "-Infinity is not a number"),
    "nan": (with_train(save_every_minutes=1).replace("1}}", "NaN}}"), "NaN is not a number JSON allows"),
    "float_overflow": (with_train(max_grad_norm=1).replace("1}}", "1e999}}"), "1e999 is too large for a float"),
    "duplicate_key": ('{"name": "x", "seed": 1, "seed": 2}', "duplicate key 'seed'"),
    "duplicate_nested_key": ('{"name": "x", "eval": {"stop": [], "stop": ["x"]}}', "duplicate key 'stop'"),
    "over_long_integer": (f'{{"name": "x", "seed": {BIG}}}', "an integer with 5000 digits (at most 4300)"),
    "lone_surrogate": ('{"name": "x", "group": "\\ud800"}', "a lone surrogate escape"),
    "deep_nesting": ('{"name": ' + "[" * 100_000 + "]" * 100_000 + "}", "invalid JSON: nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(SPECS))
def test_malformed_spec_is_one_line_exit_2(case, tmp_path):
    text, needle = SPECS[case]
    path = tmp_path / f"{case}.json"
    path.write_text(text)
    before = snapshot(tmp_path)
    code, out, err = cli("validate", str(path))
    assert code == 2 and out == "" and len(err) == 1, err
    assert err[0].startswith(f"error: {path}: ") and needle in err[0], err
    assert snapshot(tmp_path) == before


def test_plan_refuses_an_unplannable_budget_at_once(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"name": "x", "train": {"max_tokens": 1e15}}')
    code, _, err = cli("plan", str(path))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {path}: train.max_tokens"), err
    assert MAX_TOKENS == 10**9


def test_token_budget_matches_the_window_by_window_walk():
    """plan/train's token budget, one pass over the stream, equals a walk window by window that keeps
    the window count whose running tokens are nearest the target."""
    import random

    from app.train.sft_data import plan_budget, stream_slice

    def walk(lengths, window, seed, group, budget):
        totals, pos = [0], 0
        while totals[-1] < budget:
            totals.append(totals[-1] + sum(lengths[i] for i in stream_slice(lengths, seed, pos, window, group)))
            pos += window
        over, under = totals[-1], totals[-2]
        nearer_under = len(totals) > 2 and budget - under < over - budget
        return (len(totals) - 2, under) if nearer_under else (len(totals) - 1, over)

    rng = random.Random(19)
    for _ in range(200):
        lengths = [rng.randint(1, 60) for _ in range(rng.randint(1, 30))]
        window, per_step = rng.randint(1, 4), rng.randint(1, 3)
        batch, seed, budget = window * per_step, rng.randint(0, 4), rng.randint(1, 4000)
        group = rng.choice([None, 3, batch * 2])
        got = plan_budget(lengths, batch, window, seed, group, None, None, budget)
        windows, tokens = walk(lengths, window, seed, group, budget)
        assert got.tokens == tokens
        assert (got.steps - 1) * per_step + (got.last_windows or per_step) == windows


# --- run files ---------------------------------------------------------------------------------


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x80  # not UTF-8 any more
    path.write_bytes(bytes(data))


DAMAGE = {
    "manifest_files_list": ("manifest.json", lambda p: p.write_text('{"files": []}'), "files: expected an object"),
    "manifest_files_null": ("manifest.json", lambda p: p.write_text('{"files": null}'), "got null"),
    "manifest_over_long_int": (
        "manifest.json",
        lambda p: p.write_text(f'{{"files": {{}}, "n": {BIG}}}'),
        "an integer with 5000 digits",
    ),
    "status_corrupt": ("status.json", lambda p: p.write_text('{"state": '), "invalid JSON"),
    "status_stageless": ("status.json", lambda p: p.write_text('{"state": "complete"}'), "missing key 'stages'"),
    "status_deep": ("status.json", lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
}
COMMANDS = {
    "audit": lambda run: ["audit", str(run)],
    "status": lambda run: ["status", str(run)],
    "publish": lambda run: ["publish", str(run), "--out", str(run.parent / "published")],
    "eval": lambda run: ["eval", str(run), "--no-progress"],
    "train": lambda run: ["train", str(run), "--no-progress"],
}


@pytest.fixture
def run_copy(tmp_path) -> Path:
    run = tmp_path / RUN.name
    shutil.copytree(RUN, run)
    return run


# `repro status` shows progress and reads no manifest; every other command reads each file.
PAIRS = [
    (c, cmd) for c in sorted(DAMAGE) for cmd in sorted(COMMANDS) if (DAMAGE[c][0], cmd) != ("manifest.json", "status")
]


@pytest.mark.parametrize(("case", "command"), PAIRS)
def test_damaged_run_file_is_one_line_exit_1(case, command, run_copy):
    rel, damage, needle = DAMAGE[case]
    damage(run_copy / rel)
    before = snapshot(run_copy.parent)
    code, _, err = cli(*COMMANDS[command](run_copy))
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: {run_copy / rel}") and needle in err[0], err
    assert same_but_lock(before, snapshot(run_copy.parent))


@pytest.mark.parametrize("how", ["truncated", "flipped_byte"])
def test_audit_reports_a_damaged_eval_metrics_as_a_failed_file(how, run_copy):
    path = run_copy / "eval_metrics.json"
    if how == "truncated":
        path.write_text(path.read_text()[:40])
    else:
        flip_byte(path)
    code, _, err = cli("audit", str(run_copy))
    assert code == 1 and "Traceback" not in "\n".join(err)
    assert "file eval_metrics.json: sha256 differs from manifest.json" in err
    assert any(
        line.startswith("file eval_metrics.json: ") and ("invalid JSON" in line or "UTF-8" in line) for line in err
    )
    assert err[0].startswith(f"AUDIT FAILED {run_copy}")  # the verdict first


def test_status_reports_a_damaged_metrics_file_in_one_line(run_copy):
    flip_byte(run_copy / "eval_metrics.json")
    code, _, err = cli("status", str(run_copy))
    assert code == 1 and err == [f"error: {run_copy / 'eval_metrics.json'}: not UTF-8 (byte {err[0].split('byte ')[1]}"]


# --- output targets ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["report", "publish"])
@pytest.mark.parametrize("where", ["file", "under_file"])
def test_out_that_cannot_be_a_directory_is_refused(command, where, tmp_path):
    target = tmp_path / "taken"
    target.write_text("mine")
    out = target if where == "file" else target / "sub"
    before = snapshot(tmp_path)
    code, _, err = cli(command, str(RUN), "--out", str(out))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: --out {out}: "), err
    assert ("is not a directory" if where == "file" else f"lies under {target}") in err[0]
    assert snapshot(tmp_path) == before


# --- sbatch option values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("partition", "gpu\nrm -rf ~"),
        ("account", "lab;reboot"),
        ("time", "1:00:00\n"),
        ("mem", "64G $(id)"),
        ("gres", "gpu:1`x`"),
        ("extra", ("--qos=high\necho pwned",)),
        ("extra", ("--comment=a b",)),
    ],
)
def test_sbatch_values_that_could_leave_their_line_are_refused(field, value, tmp_path):
    opts = SlurmOptions(**{field: value})
    with pytest.raises(UserError) as exc:
        check_options(opts)
    assert "\n" not in str(exc.value) and "a generated #SBATCH line holds only" in str(exc.value)
    with pytest.raises(UserError):
        batch_script([], opts, tmp_path, "/venv/bin/python", tmp_path)


def test_sweep_refuses_a_newline_in_an_option_before_writing(tmp_path):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(SPEC))
    before = snapshot(tmp_path)
    code, out, err = cli(
        "sweep", str(spec), "--launcher", "slurm", "--dry-run", "--runs-dir", str(tmp_path / "runs"),
        "--partition", "gpu\n#SBATCH --wrap=evil",
    )  # fmt: skip
    assert code == 2 and out == "" and len(err) == 1 and err[0].startswith("error: --partition 'gpu\\n#SBATCH"), err
    assert snapshot(tmp_path) == before


def test_ordinary_sbatch_values_pass():
    check_options(
        SlurmOptions(partition="gpu,gpu2", time="1-00:00:00", gres="gpu:a100:1", mem="64G", extra=("--qos=high",))
    )


# --- predictions and data ----------------------------------------------------------------------


def test_rescore_grades_an_over_long_number_without_a_traceback(tmp_path):
    pred = tmp_path / "predictions.jsonl"
    rows = [
        {"id": "a", "output": f"<answer>{BIG}</answer>", "gold": BIG, "finish_reason": "stop"},
        {"id": "b", "output": f"<answer>{BIG}1</answer>", "gold": "18", "finish_reason": "stop"},
        {"id": "c", "output": "<answer>...18</answer>", "gold": "18", "finish_reason": "stop"},
    ]
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = cli("rescore", str(pred), "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["status_counts"]["correct"] == 2 and metrics["status_counts"]["wrong"] == 1


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ({"id": "a", "output": 18, "gold": "18", "finish_reason": "stop"}, "output: expected a string, got int"),
        ({"id": 7, "output": "x", "gold": "18", "finish_reason": "stop"}, "id: expected a string"),
        ({"id": "a", "output": "x", "gold": "1", "finish_reason": "stop", "n_tokens": -3}, "n_tokens: expected"),
        ({"id": "a", "output": "x", "gold": None, "finish_reason": "stop"}, "gold: expected a number"),
        (f'{{"id": "a", "output": "x", "gold": {BIG}, "finish_reason": "stop"}}', "an integer with 5000 digits"),
    ],
)
def test_malformed_prediction_is_one_line_exit_2(line, needle, tmp_path):
    pred = tmp_path / "predictions.jsonl"
    pred.write_text((line if isinstance(line, str) else json.dumps(line)) + "\n")
    code, _, err = cli("rescore", str(pred))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {pred}:1: ") and needle in err[0], err


def test_gsm8k_row_with_an_over_long_integer_is_one_line(tmp_path, real_gsm8k):
    data = tmp_path / "gsm"
    data.mkdir()
    for split in ("train", "test"):
        head = (real_gsm8k / f"{split}.jsonl").read_text().splitlines()[:2]
        (data / f"{split}.jsonl").write_text("\n".join(head) + "\n")
    with (data / "train.jsonl").open("a") as fh:  # a long gold in text is read exactly
        fh.write(json.dumps({"question": "q", "answer": f"so\n#### {BIG}"}) + "\n")
    with (data / "test.jsonl").open("a") as fh:
        fh.write(f'{{"question": "q", "answer": "#### 1", "n": {BIG}}}\n')
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"name": "x", "data": {"source": str(data), "train_size": 3}, "train": {"epochs": 1}}))
    code, _, err = cli("validate", str(spec))
    assert code == 2 and len(err) == 1, err
    assert (
        err[0] == f"error: {spec}: data.source: {data / 'test.jsonl'}:3: "
        "invalid JSON: an integer with 5000 digits (at most 4300)"
    )


@pytest.mark.parametrize("rel", ["eval_metrics.json", "env.json", "data.json", "train_metrics.json"])
def test_report_on_a_damaged_run_file_is_one_line_exit_1(rel, run_copy):
    path = run_copy / rel
    path.write_text(path.read_text()[:30])
    out = run_copy.parent / "report"
    code, _, err = cli("report", str(run_copy), "--out", str(out))  # the manifest check comes first
    assert (
        code == 1 and len(err) == 1 and err[0].startswith(f"error: {path}: sha256") and "--allow-unverified" in err[0]
    )
    code, _, err = cli("report", str(run_copy), "--out", str(out), "--allow-unverified")  # then the reader's own
    errors = [line for line in err if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and errors[0].startswith(f"error: {path}:") and "invalid JSON" in errors[0]
    assert err[0].startswith(f"warning: {run_copy}: unverified"), err
    assert not out.exists()


@pytest.mark.parametrize(
    ("config", "needle"), [("[", "invalid JSON"), ('{"hidden_size": 4}', "not a decoder config plan can read")]
)
def test_plan_of_a_model_with_a_broken_config_is_one_line(config, needle, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(config)
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"name": "x", "model": {"id": str(model)}, "train": {"epochs": 1}}))
    code, _, err = cli("plan", str(spec))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {model / 'config.json'}") and needle in err[0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [("{oops\n", ":1: invalid JSON"), ('{"job_id": 1, "run_dir": "r"}\n', ":1: expected string fields job_id")],
)
def test_damaged_slurm_submissions_are_one_line(text, needle, tmp_path):
    (tmp_path / ".slurm").mkdir()
    (tmp_path / ".slurm" / "submissions.jsonl").write_text(text)
    code, _, err = cli("status", str(tmp_path))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {tmp_path / '.slurm'}") and needle in err[0]


@pytest.mark.parametrize("command", ["run", "train", "eval", "pending"])
def test_a_seed_past_32_bits_never_reaches_a_run_directory(command, tmp_path):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({**SPEC, "seed": 2**32}))
    code, _, err = cli(command, str(spec), "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {spec}: seed: "), err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["run", "train", "eval"])
def test_missing_data_leaves_no_run_directory(command, tmp_path):
    """A stage that cannot start for want of its data says so and creates nothing (no run left as `new`)."""
    spec = tmp_path / "s.json"
    body = {"name": "nog", "data": {"source": str(tmp_path / "gone"), "train_size": 4}, "train": {"max_steps": 1}}
    spec.write_text(json.dumps(body))
    code, _, err = cli(command, str(spec), "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and err == [f"error: {tmp_path / 'gone'}: GSM8K directory not found (data.source or GSM8K_DIR)"]
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
