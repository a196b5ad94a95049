"""Fuzz the spec reader and the run-file readers: one line, the right exit code, nothing written.

A seeded random fuzzer (no extra dependency): each case mutates a valid spec or one JSON file of a
copied committed run (a value replaced by a hostile one, a key dropped or duplicated, a byte
flipped, the text cut short, deep nesting) and runs the reader in-process. The seed is fixed, so a
failure reproduces; REPRO_FUZZ_SEED picks another sequence, REPRO_FUZZ_N more cases.
"""

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.errors import UserError
from app.rundir.layout import SHAPES, read_run_json
from app.rundir.manifest import custody_problems
from app.rundir.run_dir import RunDir
from app.spec.run_spec import SpecError, parse_spec
from tests.helpers import snapshot

REPO = Path(__file__).resolve().parents[2]
RUN = next((REPO / "docs" / "cpu_study" / "runs").glob("cpu_orig_128-*"))
SEED = int(os.environ.get("REPRO_FUZZ_SEED", "19"))
N = int(os.environ.get("REPRO_FUZZ_N", "300"))
HOSTILE = [
    None, True, 0, -1, 2**32, 2**63, 1e308, -0.0, "", "\n", "x" * 300, [], {}, [[[]]], {"a": {"b": None}},
    "Infinity", "../..", "2026-13-99T99:99:99Z",
]  # fmt: skip
RAW = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000, "[" * 3000 + "]" * 3000, '"\\ud800"', "01", "1.", "tru"]


def paths(value: object, at: tuple = ()) -> list[tuple]:
    """Every path to a value inside nested dicts and lists."""
    out = [at]
    if isinstance(value, dict):
        out += [p for k, v in value.items() for p in paths(v, (*at, k))]
    elif isinstance(value, list):
        out += [p for i, v in enumerate(value) for p in paths(v, (*at, i))]
    return out


def replaced(value: object, at: tuple, new: object) -> object:
    if not at:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[at[0]] = replaced(copy[at[0]], at[1:], new)
    return copy


def mutate(text: str, rng: random.Random) -> str:
    """One hostile variant of a JSON document's text."""
    kind = rng.randrange(6)
    if kind == 0:  # a value replaced by a hostile one
        obj = json.loads(text)
        return json.dumps(replaced(obj, rng.choice(paths(obj)), rng.choice(HOSTILE)))
    if kind == 1:  # a value replaced by raw text json.dumps would never write
        obj, marker = json.loads(text), "\u0000MARK\u0000"
        return json.dumps(replaced(obj, rng.choice(paths(obj)), marker)).replace(json.dumps(marker), rng.choice(RAW))
    if kind == 2:  # a key written twice
        i = text.find('"', rng.randrange(len(text)))
        return text if i < 0 else text[:i] + text[i:].split(",", 1)[0] + ", " + text[i:]
    if kind == 3:  # cut short
        return text[: rng.randrange(len(text))]
    if kind == 4:  # one byte changed
        i = rng.randrange(len(text))
        return text[:i] + chr(rng.choice([0, 10, 34, 44, 91, 93, 123, 125, 0xFF, 0x2028])) + text[i + 1 :]
    return "[" * 50_000 + text + "]" * 50_000 if rng.random() < 0.5 else '{"a":' * 5000 + "1" + "}" * 5000


def test_spec_reader_fuzz(tmp_path):
    """Every mutated spec parses, or fails with one line per problem, each naming the file."""
    base = json.dumps(json.loads((REPO / "specs" / "cpu_study" / "cpu_orig_128.json").read_text()), indent=1)
    rng, outcomes = random.Random(SEED), {"ok": 0, "refused": 0}
    for i in range(N * 2):
        text = mutate(base, rng)
        try:
            parse_spec(text, "f.json")
            outcomes["ok"] += 1
        except SpecError as exc:
            assert exc.problems and all(p.startswith("f.json") and "\n" not in p for p in exc.problems), (i, text)
            outcomes["refused"] += 1
    assert outcomes["refused"] > N  # the fuzzer does reach the refusals


def test_validate_cli_fuzz(tmp_path):
    """`repro validate` on mutated specs: exit 0 (OK line) or 2 (lines naming the file), nothing written."""
    base = (REPO / "specs" / "cpu_study" / "cpu_orig_128.json").read_text()
    rng, runner = random.Random(SEED + 1), CliRunner()
    spec = tmp_path / "spec.json"
    for i in range(N // 5):
        spec.write_text(mutate(base, rng), encoding="utf-8", errors="surrogatepass")
        before = snapshot(tmp_path)
        result = runner.invoke(app, ["validate", str(spec)], catch_exceptions=False)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code in (0, 2), (i, result.stderr)
        assert result.exit_code == 0 or (lines and all(line.startswith(f"error: {spec}") for line in lines)), lines
        assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def run_copy(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fuzz") / RUN.name
    shutil.copytree(RUN, run)
    return run


def check_readers(run: Path) -> None:
    """The in-process readers: a result, or a UserError/IntegrityError of one line."""
    for call in (lambda: RunDir(run).status(), lambda: custody_problems(RunDir(run))):
        try:
            call()
        except UserError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(run)), str(exc)
    for rel in SHAPES:
        try:
            read_run_json(run / rel, rel)
        except UserError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(run / rel)), str(exc)


def test_run_file_readers_fuzz(run_copy, monkeypatch):
    """Mutated run files: readers, `repro status`, `audit` and `publish` give one error line or a report."""
    from app.env import fingerprint

    here = fingerprint.fingerprint()  # this machine does not change between cases: fingerprint it once
    monkeypatch.setattr(fingerprint, "fingerprint", lambda: here)
    rng, runner = random.Random(SEED + 2), CliRunner()
    originals = {rel: (run_copy / rel).read_text() for rel in SHAPES if (run_copy / rel).is_file()}
    for i in range(N):
        rel = rng.choice(sorted(originals))
        (run_copy / rel).write_text(mutate(originals[rel], rng), encoding="utf-8", errors="surrogatepass")
        before = snapshot(run_copy)
        check_readers(run_copy)
        published = run_copy.parent / "published"  # outside the run; a clean mutation publishes
        args = [
            ["audit", str(run_copy)],
            ["status", str(run_copy)],
            ["publish", str(run_copy), "--out", str(published)],
        ]
        result = runner.invoke(app, args[i % 3], catch_exceptions=False)
        shutil.rmtree(published, ignore_errors=True)
        assert result.exit_code in (0, 1, 2), (i, rel, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) <= 1 and (not errors or len(result.stderr.strip().splitlines()) == 1), result.stderr
        assert snapshot(run_copy) == before, (i, rel)
        (run_copy / rel).write_text(originals[rel])


def test_predictions_reader_fuzz(tmp_path):
    """Mutated predictions lines: `repro rescore` grades them or gives one error line, exit 2."""
    lines = (RUN / "predictions.jsonl").read_text().splitlines()[:4]
    rng, runner = random.Random(SEED + 3), CliRunner()
    pred = tmp_path / "predictions.jsonl"
    for i in range(N // 2):
        k = rng.randrange(len(lines))
        mutated = mutate(lines[k], rng).replace("\n", " ")
        pred.write_text("\n".join([*lines[:k], mutated, *lines[k + 1 :]]) + "\n", errors="surrogatepass")
        before = snapshot(tmp_path)
        result = runner.invoke(app, ["rescore", str(pred), "--json"], catch_exceptions=False)
        err = result.stderr.strip().splitlines()
        assert result.exit_code in (0, 2), (i, result.stderr)
        assert result.exit_code == 0 or (len(err) == 1 and err[0].startswith(f"error: {pred}")), err
        assert snapshot(tmp_path) == before
