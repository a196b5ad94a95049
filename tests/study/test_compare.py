"""`repro compare` (app/study/compare.py): paired strict accuracy of two predictions files, each named."""

import json

import pytest

from tests.helpers import repro


def test_compare_pairs_items(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    mk = lambda ok: {"output": f"<answer>{1 if ok else 2}</answer>", "gold": "1", "finish_reason": "stop"}  # noqa: E731
    a.write_text("".join(json.dumps({"id": f"q{i}", **mk(i < 2)}) + "\n" for i in range(10)))
    b.write_text("".join(json.dumps({"id": f"q{i}", **mk(i < 9)}) + "\n" for i in range(10)))
    out = json.loads(repro("compare", str(a), str(b), "--json").stdout)
    assert out["n_paired"] == 10 and out["only_b_correct"] == 7 and out["only_a_correct"] == 0
    assert out["mcnemar_p"] == pytest.approx(2 / 128)
    text = repro("compare", str(a), str(b)).stdout.splitlines()
    assert text[:2] == [f"A = {a}", f"B = {b}"] and text[2].startswith("n=10  A=0.2000  B=0.9000")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = repro("compare", str(a), str(empty))
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {empty}: no predictions to compare (evaluate it first)"
