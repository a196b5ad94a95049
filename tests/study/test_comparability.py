"""Which runs may stand side by side: process count flagged, machines refused unless allowed, then flagged."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.errors import UserError
from app.study.comparability import machine_mismatches, mixed_machine_flag, training_mismatches


def run(name: str, train_metrics: dict | None) -> SimpleNamespace:
    return SimpleNamespace(spec=SimpleNamespace(name=name), train_metrics=train_metrics)


def test_runs_on_one_process_count_are_not_flagged():
    runs = [run("a", {"world_size": 2}), run("b", {"world_size": 2}), run("base", None)]
    assert training_mismatches(runs) == []


def test_mixed_process_counts_are_flagged_naming_the_runs_of_each():
    runs = [run("a", {"world_size": 1}), run("b", {"world_size": 8}), run("c", {}), run("base", None)]
    assert training_mismatches(runs) == [
        "runs trained on different process counts (world size), compared anyway: 1 (a, c); 8 (b)"
    ]


STUDY = Path(__file__).resolve().parents[2] / "docs" / "cpu_study" / "runs"


def committed(name: str):
    from app.study.report import load_run

    return load_run(next(STUDY.glob(f"cpu_{name}-*")), note=lambda *_: None)


def test_the_machine_enters_the_check():
    """The committed CPU study was made on two CPU models: orig_64 on one, P_64 on the other."""
    orig, hardened = committed("orig_64"), committed("P_64")
    (line,) = machine_mismatches([orig, hardened])
    assert "Intel(R) Xeon(R) Processor (cpu_orig_64)" in line and "@ 2.80GHz (cpu_P_64)" in line
    assert mixed_machine_flag(orig, hardened).startswith("mixed machines: Intel(R) Xeon(R) Processor vs ")
    assert mixed_machine_flag(orig, committed("B_64")) is None and machine_mismatches([orig, orig]) == []


def test_report_refuses_mixed_machines_unless_allowed_then_flags_each_affected_line(tmp_path):
    from app.study.report import build_report

    runs = [next(STUDY.glob(f"cpu_{name}-*")) for name in ("orig_64", "P_64", "B_64")]
    with pytest.raises(UserError, match="--allow-mixed-machines"):
        build_report(runs, tmp_path / "no", note=lambda *_: None)
    assert not (tmp_path / "no").exists()
    build_report(runs, tmp_path / "yes", note=lambda *_: None, allow_mixed_machines=True)
    doc = json.loads((tmp_path / "yes" / "report.json").read_text())
    assert any("runs made on different machines" in w for w in doc["warnings"])
    flagged = {c["label"] for c in doc["comparisons"] if c["flag"]}
    mixed = {c["label"] for c in doc["comparisons"] if "cpu_P_64" in (c["baseline_run"], c["candidate_run"])}
    assert flagged == mixed and len(mixed) == 2  # P vs orig, strict and no parsable answer; B vs orig not flagged
    assert "⚠ mixed machines" in (tmp_path / "yes" / "report.md").read_text()
