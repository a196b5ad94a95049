"""One JSONL rule for predictions.jsonl and train_log.jsonl: a bad line names file:line; only a torn
last line is dropped, and only by a resuming stage."""

import json

import pytest

from app.errors import UserError
from app.eval.evaluate import read_predictions
from app.rundir.jsonl import parse_jsonl, read_jsonl

ROWS = [{"id": f"test-{i}", "output": "o", "gold": "1", "finish_reason": "stop", "index": i} for i in range(4)]


def _lines(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_intact_file_reads_every_row():
    assert parse_jsonl(_lines(ROWS), "f") == ROWS
    assert parse_jsonl(_lines(ROWS).rstrip("\n"), "f") == ROWS  # last line complete but unterminated


def test_torn_last_line_is_dropped_only_when_resuming():
    torn = _lines(ROWS) + json.dumps(ROWS[0])[:9]
    assert parse_jsonl(torn, "f", torn_tail=True) == ROWS
    with pytest.raises(UserError, match=r"^f:5: invalid JSON"):
        parse_jsonl(torn, "f", torn_tail=False)


@pytest.mark.parametrize("torn_tail", [True, False])
@pytest.mark.parametrize(
    "bad, needle", [("{oops", "invalid JSON"), ("", "blank line"), ("[1, 2]", "expected a JSON object")]
)
def test_bad_middle_line_is_an_error_naming_it(torn_tail, bad, needle):
    lines = [json.dumps(r) for r in ROWS]
    lines[2] = bad
    with pytest.raises(UserError, match=f"^f:3: {needle}"):
        parse_jsonl("\n".join(lines) + "\n", "f", torn_tail)


def test_corrupt_middle_prediction_is_an_error_not_a_smaller_n(tmp_path):
    path = tmp_path / "predictions.jsonl"
    lines = _lines(ROWS).splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + '{"id": "test-2", "outp\n' + "".join(lines[3:]))
    before = path.read_bytes()
    for torn_tail in (False, True):
        with pytest.raises(UserError, match=f"^{path}:3: invalid JSON"):
            read_predictions(path, torn_tail=torn_tail)
    assert path.read_bytes() == before


def test_prediction_missing_a_field_names_its_line(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(_lines([*ROWS[:3], {"id": "x"}]))
    with pytest.raises(UserError, match=f"^{path}:4: missing field"):
        read_predictions(path)
    path.write_text(_lines(ROWS))
    assert len(read_predictions(path)) == 4


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "train_log.jsonl"
    path.write_bytes(_lines(ROWS[:2]).encode() + b'{"x": "\xff"}\n')
    with pytest.raises(UserError, match=f"^{path}:3: not UTF-8"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "absent.jsonl") == []


@pytest.mark.parametrize(
    "args",
    [["rescore", "{run}"], ["compare", "{run}", "{run}"], ["report", "{run}", "--out", "{tmp}/report"]],
)
def test_commands_refuse_a_corrupt_middle_prediction_and_change_nothing(tmp_path, args):
    """A complete run's predictions.jsonl with a damaged line 2: one error naming file:2, no file changes.
    (Without --allow-unverified the manifest check refuses it first: tests/integration/test_attacks.py.)"""
    import shutil

    from tests.helpers import FIXTURE, RUN, repro, snapshot

    run = tmp_path / RUN
    shutil.copytree(FIXTURE / RUN, run)
    pred = run / "predictions.jsonl"
    lines = pred.read_text().splitlines(keepends=True)
    pred.write_text(lines[0] + lines[1][:20] + "\n" + "".join(lines[2:]))
    before = snapshot(run)
    out = repro(*[a.format(run=run, tmp=tmp_path) for a in args], "--allow-unverified")
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {pred}:2: invalid JSON"), out.stderr
    assert snapshot(run) == before
