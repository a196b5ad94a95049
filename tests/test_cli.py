"""The command line as a whole: every command of `repro` answers `--help` and has one happy path;
`repro --version`.

Commands are read from the typer app itself, so a new command is covered at once: its `--help` is
checked, and the test fails until it has a happy path in HAPPY (every command has an offline one:
`--dry-run`, `--check`, the session's tiny run, the local fake hub).
Happy paths run in-process (CliRunner) on the session's tiny model and run; only `fetch`, whose hub
endpoint is fixed when huggingface_hub is imported, needs a fresh process (against tests/hub_server.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from app import preempt
from app.cli import app
from tests.helpers import REPO, repro
from tests.hub_server import FakeHub, directory_files


def walk(group, prefix: str = "") -> dict[str, object]:
    """Every registered command and sub-app by the words typed after `repro`, sub-apps walked too.
    (typer 0.29 carries its own click, so a group is told by its `commands`, not by its class.)"""
    found: dict[str, object] = {}
    for name, command in sorted(group.commands.items()):
        found[prefix + name] = command
        if hasattr(command, "commands"):
            found |= walk(command, f"{prefix}{name} ")
    return found


COMMANDS = walk(typer.main.get_command(app))
LEAVES = [name for name, command in COMMANDS.items() if not hasattr(command, "commands")]


def cli(*args: str) -> Result:
    """`repro ARGS` in this process: exit code, stdout, and stderr kept apart."""
    return CliRunner().invoke(app, list(args), prog_name="repro")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_the_command(command):
    out = cli(*command.split(), "--help")
    assert out.exit_code == 0, out.output
    assert f"Usage: repro {command} " in out.stdout, out.stdout


@pytest.mark.parametrize("command", LEAVES)
def test_help_gives_an_example(command):
    assert f"Example: `repro {command}" in (COMMANDS[command].help or ""), COMMANDS[command].help


@pytest.mark.parametrize(
    "command, choices",
    [("plan", "<h100|h200|a100|a100-40|l40s|a10>"), ("sweep", "<local|slurm>"), ("replay", "<train|eval|all>")],
)
def test_help_lists_the_choices_of_an_option(command, choices):
    out = CliRunner().invoke(app, [command, "--help"], prog_name="repro", env={"COLUMNS": "200"})
    assert choices in out.stdout, out.stdout


def test_a_value_outside_the_choices_is_refused_naming_them():
    out = cli("plan", "specs/smoke_cpu.json", "--gpu", "h9")
    assert out.exit_code == 2 and "'h9' is not one of" in out.output and "'a100-40'" in out.output, out.output


ONE_STEP = {"max_steps": 1, "micro_batch_size": 2, "grad_accum": 1}


@dataclass
class Ctx:
    """What a happy path may use; the session's tiny run is built only when a path asks for it."""

    tmp: Path
    request: pytest.FixtureRequest

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)

    def spec(self, name: str = "tiny", train: bool = True) -> Path:
        """A tiny spec: one step of 2 examples, 2 eval items of 8 new tokens (no train section unless `train`)."""
        path = self.fixture("tiny_spec")(name, ONE_STEP, {"max_new_tokens": 8}, train_size=4, eval_limit=2)
        if not train:
            raw = json.loads(path.read_text())
            del raw["train"]
            path.write_text(json.dumps(raw))
        return path

    def run(self) -> Path:
        """A copy of the session's complete tiny run, free to change."""
        run = self.fixture("tiny_run")
        copy = self.tmp / "runs" / run.name
        shutil.copytree(run, copy, symlinks=True)
        return copy


HAPPY: dict[str, Callable[[Ctx], None]] = {}


def happy(command: str):
    """Register the decorated function as `repro COMMAND`'s happy path."""

    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        HAPPY[command] = fn
        return fn

    return register


def ok(*args: str) -> str:
    """Run `repro ARGS` in-process, assert exit 0, return stdout."""
    out = cli(*map(str, args))
    assert out.exit_code == 0, f"repro {' '.join(map(str, args))}: exit {out.exit_code}\n{out.output}"
    return out.stdout


@happy("validate")
def _validate(ctx: Ctx) -> None:
    spec = ctx.spec()
    assert ok("validate", spec).startswith(f"OK {spec} ")


@happy("doctor")
def _doctor(ctx: Ctx) -> None:
    lines = ok("doctor", "--runs-dir", ctx.tmp).splitlines()
    assert {ln.split()[1] for ln in lines} >= {"python", "lock", "gsm8k", "disk"}


@happy("schema")
def _schema(ctx: Ctx) -> None:
    assert {"name", "model", "data", "train", "eval"} <= set(json.loads(ok("schema"))["properties"])


@happy("data")
def _data(ctx: Ctx) -> None:
    fp = json.loads(ok("data", ctx.spec()))
    assert (fp["train_size"], len(fp["train_first_ids"]), fp["eval_size"]) == (4, 4, 2), fp


@happy("fingerprint")
def _fingerprint(ctx: Ctx) -> None:
    fp = json.loads(ok("fingerprint"))
    assert "python" in fp and "pip_freeze" not in fp, sorted(fp)


@happy("audit")
def _audit(ctx: Ctx) -> None:
    run = ctx.run()
    assert ok("audit", run).startswith(f"AUDIT OK {run}:")


@happy("fetch")
def _fetch(ctx: Ctx) -> None:
    spec = ctx.spec("hubrun")
    raw = json.loads(spec.read_text())
    raw["model"]["id"] = "tiny-org/tiny-llama"
    spec.write_text(json.dumps(raw))
    with FakeHub() as hub:
        hub.add("model", "tiny-org/tiny-llama", directory_files(ctx.fixture("tiny_model_dir")))
        env = {"REPRO_CACHE": str(ctx.tmp / "cache"), "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
        out = repro("fetch", str(spec), env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("fetched model tiny-org/tiny-llama"), out.stdout


@happy("publish")
def _publish(ctx: Ctx) -> None:
    run = ctx.run()
    ok("publish", run, "--out", ctx.tmp / "pub")
    assert (ctx.tmp / "pub" / "runs" / run.name / "manifest.json").is_file()


@happy("replay")
def _replay(ctx: Ctx) -> None:
    out = ok("replay", ctx.run(), "--out", ctx.tmp / "replays", "--stage", "eval")
    assert out.splitlines()[-1].startswith("REPLAY byte-identical "), out


@happy("train")
def _train(ctx: Ctx) -> None:
    out = ok("train", ctx.spec(), "--runs-dir", ctx.tmp / "runs", "--no-progress")
    assert out.startswith("TRAINED "), out


@happy("eval")
def _eval(ctx: Ctx) -> None:
    out = ok("eval", ctx.spec("base", train=False), "--runs-dir", ctx.tmp / "runs", "--no-progress")
    assert out.startswith("EVALUATED ") and out.rstrip().endswith("n=2"), out


@happy("run")
def _run(ctx: Ctx) -> None:
    """An eval-only spec: `train` has its own happy path, and training twice would double the cost."""
    out = ok("run", ctx.spec("base", train=False), "--runs-dir", ctx.tmp / "runs", "--no-progress")
    assert out.startswith("COMPLETE "), out


@happy("pending")
def _pending(ctx: Ctx) -> None:
    assert ok("pending", ctx.spec(), "--runs-dir", ctx.tmp / "runs").split() == ["train", "eval"]


@happy("rescore")
def _rescore(ctx: Ctx) -> None:
    run = ctx.run()
    metrics = json.loads(ok("rescore", run, "--json"))
    assert metrics["n"] == json.loads((run / "eval_metrics.json").read_text())["n"]


@happy("compare")
def _compare(ctx: Ctx) -> None:
    run = ctx.run()
    out = json.loads(ok("compare", run, run, "--json"))
    assert out["metrics"]["strict_accuracy"]["difference"] == 0 and out["comparability"] == [], out


@happy("lock")
def _lock(ctx: Ctx) -> None:
    assert ok("lock", "--check") == ""  # problems go to stderr, one per line


@happy("matrix")
def _matrix(ctx: Ctx) -> None:
    out = ok("matrix", "--cpu", "--out", ctx.tmp / "specs")
    assert out.count("wrote ") == len(list((ctx.tmp / "specs").glob("*.json"))) > 0


@happy("sweep")
def _sweep(ctx: Ctx) -> None:
    spec = ctx.spec()
    out = ok("sweep", spec, "--runs-dir", ctx.tmp / "runs", "--launcher", "slurm", "--dry-run")
    assert out.startswith("#!/bin/bash") and "#SBATCH" in out, out


@happy("status")
def _status(ctx: Ctx) -> None:
    run = ctx.run()
    rows = json.loads(ok("status", run.parent, "--json"))
    assert [(r["run"], r["state"]) for r in rows] == [(run.name, "complete")], rows


@happy("plan")
def _plan(ctx: Ctx) -> None:
    out = json.loads(ok("plan", ctx.spec(), "--json"))
    assert len(out["runs"]) == 1 and [r["criterion"] for r in out["power"]] == ["1", "2", "2", "3"], out


@happy("report")
def _report(ctx: Ctx) -> None:
    out = ok("report", ctx.run(), "--out", ctx.tmp / "report")
    assert (ctx.tmp / "report" / "report.md").is_file(), out


@happy("export mlflow")
def _export_mlflow(ctx: Ctx) -> None:
    uri = f"sqlite:///{ctx.tmp / 'mlflow.db'}"
    out = ok("export", "mlflow", ctx.run(), "--tracking-uri", uri)
    assert out.startswith("EXPORTED "), out


@happy("export lm-eval")
def _export_lm_eval(ctx: Ctx) -> None:
    out = ok("export", "lm-eval", ctx.run(), "--out", ctx.tmp / "lm")
    results, samples = [Path(line.removeprefix("WROTE ")) for line in out.splitlines()]
    assert results.name.startswith("results_") and samples.name.startswith("samples_gsm8k_r1_zero_v1_"), out
    assert "exact_match,strict-match" in json.loads(results.read_text())["results"]["gsm8k_r1_zero_v1"]


@pytest.fixture
def no_signal_handlers():
    """train/eval/run install SIGTERM/SIGUSR1 handlers; give pytest its defaults back."""
    yield
    preempt.uninstall()


@pytest.mark.parametrize("command", LEAVES)
def test_happy_path(command, tmp_path, request, no_signal_handlers):
    assert command in HAPPY, f"`repro {command}` has no happy path: add one to HAPPY"
    HAPPY[command](Ctx(tmp_path, request))


def test_every_command_has_a_happy_path():
    leaves = set(LEAVES)
    missing, unknown = sorted(leaves - set(HAPPY)), sorted(set(HAPPY) - leaves)
    assert not missing and not unknown, {"missing": missing, "no such command": unknown}


def test_version():
    from app import __version__

    out = repro("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"repro {__version__}"


def test_plan_and_slurm_dry_run_of_the_committed_specs_need_nothing_fetched(tmp_path, monkeypatch):
    """The README's cluster commands on a fresh clone: no hub data, no GSM8K directory, no cache."""
    for var, sub in (("REPRO_CACHE", "cache"), ("HF_HOME", "hf"), ("GSM8K_DIR", "no-gsm8k")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    specs = sorted(map(str, (REPO / "specs").glob("*.json")))
    plan = cli("plan", *specs, "--gpu", "h100")
    assert plan.exit_code == 0, plan.output
    lines = plan.stdout.splitlines()
    assert lines[-15].startswith("TOTAL") and "(size of repro-ci/smollm2-135m unknown)" in plan.stdout
    power = lines[lines.index(next(ln for ln in lines if ln.startswith("power: "))) :]
    # the GPU study's n, one seed (the committed GPU specs have no replicates), the CPU study's discordance
    assert len(power) == 7 and power[2].split()[-6:-3] == ["1319", "1", "0.047"]
    assert "openai/gsm8k is not fetched" in plan.stderr and "estimated from GSM8K's split sizes" in plan.stderr
    runs = tmp_path / "runs"
    sweep = cli("sweep", *specs, "--launcher", "slurm", "--dry-run", "--time", "2:00:00", "--runs-dir", str(runs))
    assert sweep.exit_code == 0 and sweep.stdout.startswith("#!/bin/bash"), sweep.output
    assert sweep.stdout.count("/specs/") >= len(specs) and "--time 2:00:00 not checked" in sweep.stderr
    assert 'step "$TRAIN_PY" -m app train' in sweep.stdout and 'step "$EVAL_PY" -m app run' in sweep.stdout
