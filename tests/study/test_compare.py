"""`repro compare` (app/study/compare.py): every rate, both runs named, the report's own test and interval."""

import json
from pathlib import Path

import pytest

from app.study.compare import compare_runs
from tests.helpers import repro

REPO = Path(__file__).resolve().parents[2]


def test_compare_pairs_items(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    mk = lambda ok: {"output": f"<answer>{1 if ok else 2}</answer>", "gold": "1", "finish_reason": "stop"}  # noqa: E731
    a.write_text("".join(json.dumps({"id": f"q{i}", **mk(i < 2)}) + "\n" for i in range(10)))
    b.write_text("".join(json.dumps({"id": f"q{i}", **mk(i < 9)}) + "\n" for i in range(10)))
    out = json.loads(repro("compare", str(a), str(b), "--json").stdout)
    strict = out["metrics"]["strict_accuracy"]
    assert out["n_paired"] == 10 and strict["only_b"] == 7 and strict["only_a"] == 0
    assert strict["mcnemar_p"] == pytest.approx(2 / 128) and strict["ci95"][0] > 0
    assert set(out["metrics"]) >= {"diagnostic_accuracy", "unclosed_rate", "unparsable_rate", "truncated_rate"}
    text = repro("compare", str(a), str(b)).stdout.splitlines()
    assert text[:3] == [f"A = {a}", f"B = {b}", "n = 10 paired items"]
    assert text[3].startswith("comparability: not checked") and text[5].startswith(
        "strict_accuracy      0.2000  0.9000"
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = repro("compare", str(a), str(empty))
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {empty}: no predictions to compare (evaluate it first)"


def test_compare_refuses_runs_made_on_different_machines_unless_allowed():
    runs = REPO / "docs" / "cpu_study" / "runs"
    orig, hardened = next(runs.glob("cpu_orig_64-*")), next(runs.glob("cpu_P_64-*"))
    out = repro("compare", str(orig), str(hardened))
    assert out.returncode == 2 and "runs made on different machines" in out.stderr and "--allow-mixed" in out.stderr
    out = repro("compare", str(orig), str(hardened), "--allow-mixed")
    assert (
        out.returncode == 0 and "comparability: compared anyway (--allow-mixed): runs made on different" in out.stdout
    )


def test_compare_and_the_report_agree_on_every_committed_pair():
    """Every comparison of the committed report.json, recomputed by `repro compare`: the same p and interval."""
    report = json.loads((REPO / "docs" / "cpu_study" / "report.json").read_text())
    run_dir = {r["run"]: REPO / r["run_dir"] for r in report["runs"]}
    pairs = [c for c in report["comparisons"] if c["n"]]
    assert len(pairs) >= 20
    for c in pairs:
        out = compare_runs(run_dir[c["baseline_run"]], run_dir[c["candidate_run"]], False, print, allow_mixed=True)
        m = out["metrics"][c["metric"]]
        assert out["n_paired"] == c["n"] and m["only_a"] + m["only_b"] == c["discordant"], c["label"]
        assert m["mcnemar_p"] == c["mcnemar_p"] and m["ci95"] == c["difference_ci95"], c["label"]
        assert (m["a"], m["b"]) == (c["baseline_value"], c["candidate_value"]), c["label"]
