"""report.json is for programs: it validates against its schema, loads into pandas with numeric columns,
and docs/report.schema.json is the schema `repro schema --report` prints."""

import json
from pathlib import Path

import pandas as pd
import pytest
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from app.eval.grading import RATES
from app.study.report_json import SCHEMA_VERSION, ReportJson, RunRow, json_schema

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "cpu_study" / "report.json"


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads(COMMITTED.read_text())


def test_committed_report_validates_against_the_schema(report):
    parsed = ReportJson.model_validate(report)  # extra keys, display strings or a missing field fail here
    assert parsed.schema_version == SCHEMA_VERSION == report["schema_version"]
    assert len(parsed.runs) == 20 and {s.id for s in parsed.sections if s.kind == "criterion"} == {
        "criterion_1",
        "criterion_2",
        "criterion_3",
    }


def test_comparisons_load_into_pandas_as_numbers(report):
    df = pd.json_normalize(report["comparisons"])
    numeric = ["n", "discordant", "baseline_value", "candidate_value", "mcnemar_p", "holm_p"]
    numeric += [f"{side}_rates.{r.key}" for side in ("baseline", "candidate") for r in RATES]
    for column in numeric:
        assert is_numeric_dtype(df[column]), (column, df[column].dtype)
    ci = pd.DataFrame(df["difference_ci95"].dropna().tolist(), columns=["lo", "hi"])
    assert is_numeric_dtype(ci["lo"]) and (ci["lo"] <= ci["hi"]).all()
    by_metric = df.groupby("metric")["candidate_value"].count()
    assert set(by_metric.index) == {"strict_accuracy", "format_fail_rate"}
    assert set(df["section"]) <= {s["id"] for s in report["sections"]}


def test_runs_load_into_pandas_as_numbers(report):
    runs = pd.DataFrame(report["runs"])
    for column in ["train_size", "lr", "budget", "n", "strict_accuracy", "gen_tokens_p50", *(r.key for r in RATES)]:
        assert is_numeric_dtype(runs[column]) and not is_bool_dtype(runs[column]), (column, runs[column].dtype)
    lo, hi = zip(*runs["strict_ci95"])
    assert all(a <= acc <= b for a, acc, b in zip(lo, runs["strict_accuracy"], hi))
    base = runs.set_index("run").loc["cpu_base"]
    assert pd.isna(base["train_size"]) and pd.isna(base["lr"])  # untrained: null, not "-"
    assert runs.groupby("group")["strict_accuracy"].mean().between(0, 1).all()


def test_every_rate_is_a_run_field():
    assert {r.key for r in RATES} <= set(RunRow.model_fields)


def test_committed_schema_is_what_repro_schema_prints():
    committed = json.loads((REPO / "docs" / "report.schema.json").read_text())
    assert committed == json_schema(), "regenerate: repro schema --report > docs/report.schema.json"
