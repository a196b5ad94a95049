"""The report renders from real (tiny-model) run directories; the matrix specs differ only where the study says."""

import json
from pathlib import Path

import pytest

from app.launch.stages import run_stages
from app.spec.run_spec import load_spec, spec_hash
from app.study.criteria import VERDICT_WORDS
from app.study.matrix import CPU_PLAN, GPU_PLAN, matrix, recipe, write_matrix
from app.study.report_json import ReportJson

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, tiny_model_dir, mini_gsm8k):
    root = tmp_path_factory.mktemp("study")
    dirs = []
    for group, size in (("orig", 8), ("orig", 16), ("A", 16), ("B", 16), ("C", 16), ("C", 8), ("steps", 8)):
        spec_path = root / f"{group}_{size}.json"
        spec_path.write_text(
            json.dumps(
                {
                    "name": f"{group}_{size}",
                    "group": group,
                    "model": {"id": str(tiny_model_dir)},
                    "data": {"source": str(mini_gsm8k), "train_size": size, "eval_limit": 6},
                    "train": {**recipe(group), "max_steps": 1, "micro_batch_size": 2, "grad_accum": 2},
                    "eval": {"backend": "hf", "max_new_tokens": 8, "batch_size": 6},
                }
            )
        )
        dirs.append(run_stages(load_spec(spec_path), root / "runs", progress=False).path)
    return dirs


def test_report_renders_from_run_directories(tiny_runs, tmp_path):
    from tests.helpers import repro

    out = repro("report", *map(str, tiny_runs), "--out", str(tmp_path / "rep"), "--reference-original")
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.count("\n| ") >= 7 and "strict ± 95% CI" in md
    for name in ("format.png", "accuracy.png", "failures.png", "lengths.png", "curves.png", "budget.png"):
        assert (tmp_path / "rep" / name).read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and "src='accuracy.png'" not in page
    assert page.index("id='headline'") < page.index("id='runs-table'")  # the answer first, then the runs
    assert md.index("## The answer") < md.index("## Runs")
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert ReportJson.model_validate(doc).schema_version == 3
    criteria = [s for s in doc["sections"] if s["kind"] == "criterion"]
    assert [c["id"] for c in criteria] == ["criterion_1", "criterion_2", "criterion_3"]
    assert all(c["verdict"] in VERDICT_WORDS for c in criteria)
    assert criteria[2]["verdict"] == "cannot be decided at this size"  # 6 questions cannot show "no worse"
    assert "intersection–union" in criteria[0]["rule"] and "δ = 0.02" in criteria[2]["rule"]
    check = next(c for c in doc["comparisons"] if c["section"] == "criterion_1")
    assert (check["baseline_run"], check["candidate_run"]) == ("A_16", "B_16") and "| A_16 |" in md  # arms named


def eval_only(root: Path, tiny_model_dir, mini_gsm8k, name: str, group: str, model_id: str, max_new: int) -> Path:
    """An eval-only run beside the tiny study runs."""
    spec_path = root / f"{name}.json"
    spec_path.write_text(
        json.dumps(
            {
                "name": name,
                "group": group,
                "model": {"id": model_id},
                "data": {"source": str(mini_gsm8k), "train_size": 16, "eval_limit": 6},
                "eval": {"backend": "hf", "max_new_tokens": max_new, "batch_size": 6},
            }
        )
    )
    return run_stages(load_spec(spec_path), root / "runs", progress=False).path


def test_report_refuses_runs_evaluated_differently_unless_told(tiny_runs, tiny_model_dir, mini_gsm8k, tmp_path):
    from tests.helpers import repro

    other = eval_only(tiny_runs[0].parent.parent, tiny_model_dir, mini_gsm8k, "base12", "base", str(tiny_model_dir), 12)
    out = repro("report", *map(str, tiny_runs), str(other), "--out", str(tmp_path / "rep"))
    assert out.returncode == 2 and "max_new_tokens differs: 8 (orig_8" in out.stderr and "12 (base12)" in out.stderr
    assert not (tmp_path / "rep").exists()
    out = repro("report", *map(str, tiny_runs), str(other), "--out", str(tmp_path / "rep"), "--allow-mixed-eval")
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.split("## Runs")[0].count("> **warning:** runs evaluated differently") == 1


def test_decode_arm_evaluates_a_trained_checkpoint_and_is_reported(tiny_runs, tiny_model_dir, mini_gsm8k, tmp_path):
    from tests.helpers import repro

    source = tiny_runs[3]  # B_16, named by its spec name as `repro matrix` writes it
    decode = eval_only(source.parent.parent, tiny_model_dir, mini_gsm8k, "decode12_B_16", "decode", "run:B_16", 12)
    metrics = json.loads((decode / "eval_metrics.json").read_text())
    assert metrics["max_new_tokens"] == 12 and metrics["model_source"]["path"] == str(source / "checkpoint")
    out = repro("report", *map(str, tiny_runs), str(decode), "--out", str(tmp_path / "rep"))
    assert out.returncode == 0, out.stderr  # a decode arm differs in max_new_tokens by design
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["sections"][-1]["title"].startswith("Decoding robustness")
    checks = [c for c in doc["comparisons"] if c["section"] == "decoding_robustness"]
    assert checks[0]["baseline_run"] == "B_16" and checks[0]["candidate_run"] == "decode12_B_16"
    assert "8 → 12" in checks[0]["label"] and [c["metric"] for c in checks] == ["strict_accuracy", "format_fail_rate"]


def test_a_run_source_is_named_by_spec_name_or_directory(tiny_runs):
    from app.inputs.models import run_checkpoint

    source = tiny_runs[3]
    assert run_checkpoint("run:B_16", source.parent) == run_checkpoint(f"run:{source.name}", source.parent)
    assert run_checkpoint("run:B_16", source.parent) == str((source / "checkpoint").resolve())


def test_report_refuses_a_run_without_eval(tmp_path):
    from tests.helpers import repro

    (tmp_path / "r").mkdir()
    out = repro("report", str(tmp_path / "r"), "--out", str(tmp_path / "o"))
    assert out.returncode == 2 and "no eval_metrics.json" in out.stderr


def _flat(spec) -> dict:
    d = spec.model_dump(mode="json")
    return {f"{k}.{kk}": vv for k, v in d.items() if isinstance(v, dict) for kk, vv in v.items()} | {
        k: v for k, v in d.items() if not isinstance(v, dict)
    }


def test_matrix_specs_differ_only_where_the_study_says():
    specs = {s.name: s for s in matrix(GPU_PLAN)}
    assert "B_1024" in specs and "orig_full" in specs and specs["base"].train is None
    allowed = {"name", "group"}
    diff = lambda a, b: {k for k in _flat(a) if _flat(a)[k] != _flat(b)[k]} - allowed  # noqa: E731
    assert diff(specs["orig_1024"], specs["A_1024"]) == {"train.schedule", "train.warmup_ratio"}
    assert diff(specs["A_1024"], specs["B_1024"]) == {"train.loss_mask"}
    assert diff(specs["B_1024"], specs["C_1024"]) == {"train.lr"}
    assert diff(specs["orig_512"], specs["orig_1024"]) == {"data.train_size"}
    assert diff(specs["orig_128"], specs["orig_512"]) == {"data.train_size", "train.epochs"}
    assert diff(specs["B_1024"], specs["lr3e-05_1024"]) == {"train.lr"}
    lrs = {s.train.lr for s in specs.values() if s.train and s.data.train_size == 1024 and s.group in ("B", "C", "lr")}
    assert lrs == {5e-6, 1e-5, 2e-5, 3e-5}
    assert specs["orig_128"].train.epochs == 3 and specs["orig_512"].train.epochs == 1
    assert specs["A_512"].train.warmup_ratio == 0.05 and specs["A_512"].train.min_lr_ratio == 0.1
    trained = [s for s in specs.values() if s.group != "decode"]
    assert all(s.model.id == "Qwen/Qwen2.5-Math-1.5B" and s.eval.max_new_tokens == 1024 for s in trained)
    assert all(s.data.eval_limit is None for s in specs.values())


def test_matrix_has_prompt_budget_and_decoding_arms():
    specs = {s.name: s for s in matrix(GPU_PLAN)}
    diff = lambda a, b: {k for k in _flat(a) if _flat(a)[k] != _flat(b)[k]} - {"name", "group"}  # noqa: E731
    assert diff(specs["orig_512"], specs["P_512"]) == {"prompt.template"}
    assert {s.train.max_steps for s in specs.values() if s.group == "steps"} == {468}  # ceil(7473 / 16)
    assert sorted(s.data.train_size for s in specs.values() if s.group == "tokens") == [128, 256, 512, 1024]
    assert diff(specs["orig_128"], specs["steps_128"]) == {"train.epochs", "train.max_steps"}
    decode = specs["decode2048_orig_full"]
    assert decode.train is None and decode.eval.max_new_tokens == 2048
    assert decode.model.id == "run:orig_full"  # by spec name: found through app/rundir/find.py
    cpu = {s.name: s for s in matrix(CPU_PLAN)}
    assert {n for n, s in cpu.items() if s.group in ("P", "steps", "tokens", "decode")} == {
        "cpu_P_64",
        "cpu_P_128",
        "cpu_steps_32",
        "cpu_steps_64",
        "cpu_tokens_32",
        "cpu_tokens_64",
        "cpu_decode384_P_128",
    }


@pytest.mark.parametrize(("plan", "where"), [(GPU_PLAN, "specs"), (CPU_PLAN, "specs/cpu_study")])
def test_committed_matrix_matches_the_generator(plan, where, tmp_path):
    """By meaning, not bytes: a field added with a default needs no regeneration of committed specs."""
    written = write_matrix(matrix(plan), tmp_path)
    for path in written:
        assert (REPO / where / path.name).is_file(), f"{REPO / where / path.name} missing: run repro matrix"
        committed, generated = load_spec(REPO / where / path.name), load_spec(path)
        assert committed == generated, f"{committed.name}: differs from the generator: run repro matrix"
        assert spec_hash(committed) == spec_hash(generated)


STUDY_RUNS = sorted((REPO / "docs" / "cpu_study" / "runs").glob("*"))


def test_committed_report_regenerates_byte_identical(tmp_path, monkeypatch):
    """The published CPU study's report, every figure and report.json, rebuilt from its 20 committed runs
    (made on two CPU models: docs/cpu_study/README.md's command passes --allow-mixed-machines)."""
    from app.study.report import build_report

    monkeypatch.chdir(REPO)  # the report names runs as given: as docs/cpu_study/README.md's command did
    runs = [run.relative_to(REPO) for run in STUDY_RUNS]
    title = "GSM8K SFT study, CPU scale (SmolLM2-135M)"
    build_report(runs, tmp_path, title, False, 0.02, False, False, print, allow_mixed_machines=True)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert "report.json" in written and len(written) >= 9
    for name in written:
        assert (tmp_path / name).read_bytes() == (REPO / "docs" / "cpu_study" / name).read_bytes(), name
