"""`repro compare` (app/study/compare.py): every rate, both runs named, the report's own test and interval."""

import json
import shutil
from pathlib import Path

import pytest

from app.study.compare import compare_arms
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
    dirs = lambda names: [run_dir[n] for n in names.split(", ")]  # noqa: E731  (seed replicates: every seed's run)
    for c in pairs:
        out = compare_arms(dirs(c["baseline_run"]), dirs(c["candidate_run"]), False, print, allow_mixed=True)
        m = out["metrics"][c["metric"]]
        assert out["n_paired"] == c["n"] and out["seeds"] == c["seeds"], c["label"]
        assert m["p"] == c["p"] and m["ci95"] == c["difference_ci95"], c["label"]
        assert (m["a"], m["b"]) == (c["baseline_value"], c["candidate_value"]), c["label"]
        if c["seeds"] == 1:
            assert m["only_a"] + m["only_b"] == c["discordant"] and m["mcnemar_p"] == c["mcnemar_p"], c["label"]
        else:
            assert m["seed_differences"] == pytest.approx(c["seed_differences"], abs=1e-6), c["label"]


def replicas(tmp_path: Path, pattern: str, seeds) -> list[Path]:
    """Copies of a committed run relabelled as seeds (spec edited: reported with --allow-unverified)."""
    src = next((REPO / "docs" / "cpu_study" / "runs").glob(pattern))
    out = []
    for k in seeds:
        dst = tmp_path / f"{src.name}_s{k}"
        shutil.copytree(src, dst)
        spec = json.loads((dst / "spec.json").read_text())
        spec["seed"], spec["data"]["subset_seed"], spec["name"] = k, k, f"{spec['name']}_seed{k}"
        (dst / "spec.json").write_text(json.dumps(spec))
        out.append(dst)
    return out


def test_compare_two_arms_of_seed_replicates(tmp_path):
    """More than two runs: split into two recipes (A: the first one's), paired by seed, items × seeds t."""
    a, b = replicas(tmp_path, "cpu_orig_64-*", (0, 1, 2)), replicas(tmp_path, "cpu_B_64-*", (0, 1, 2))
    out = repro("compare", *map(str, [a[1], b[2], a[0], b[0], a[2], b[1]]), "--json", "--allow-unverified")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["seeds"] == 3 and res["run_a"].split(", ")[0].endswith("_seed0")
    strict = res["metrics"]["strict_accuracy"]
    assert strict["test"] == "items x seeds t" and len(strict["seed_differences"]) == 3
    assert strict["ci95"][0] < strict["difference"] < strict["ci95"][1]
    text = repro("compare", *map(str, a + b), "--allow-unverified").stdout
    assert "× 3 paired seeds (items × seeds t test)" in text
    bad = repro("compare", *map(str, a + b[:2]), "--allow-unverified")
    assert bad.returncode == 2 and "the arms' seeds do not pair: A has [0, 1, 2], B has [0, 1]" in bad.stderr
