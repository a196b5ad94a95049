"""The report's figures, drawn from the committed CPU-study runs: captioned, counted from the runs' own items."""

from pathlib import Path

import pytest

from app.eval.grading import RATES
from app.study.plots import CAPTIONS, _rate, figures
from app.study.report import load_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs():
    return [load_run(p, note=lambda *_: None) for p in sorted((REPO / "docs" / "cpu_study" / "runs").glob("*"))]


def test_every_figure_has_a_caption_and_the_format_figure_comes_first(runs):
    drawn = figures(runs)
    assert list(drawn)[0] == "format.png" and set(drawn) <= set(CAPTIONS)
    assert {"budget.png", "curves.png", "lr_sweep.png"} <= set(drawn)  # the study has budget arms, logs, a sweep
    assert all(png[:4] == b"\x89PNG" for png in drawn.values())
    assert all("Read:" in CAPTIONS[name] for name in drawn)  # each caption says what to read from it


def test_plotted_rates_and_intervals_match_each_runs_eval_metrics(runs):
    for run in runs:
        share, lo, hi = _rate(run, "strict")
        assert share == pytest.approx(run.metrics["strict_accuracy"])
        assert (lo, hi) == pytest.approx(tuple(run.metrics["strict_ci95"]))
        for rate in RATES:
            assert _rate(run, rate.key)[0] == pytest.approx(run.metrics[rate.key]), (run.spec.name, rate.key)
        assert _rate(run, "diagnostic")[0] == pytest.approx(run.metrics["diagnostic_accuracy"])
