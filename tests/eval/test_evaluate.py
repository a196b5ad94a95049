"""Eval stage with the HF backend on the tiny model: determinism, resume, the chunks, the backend table; and
the committed CPU study's metrics recomputed from its predictions (regrade, summarize)."""

import json
from pathlib import Path
from typing import get_args

import pytest

from app.env.fingerprint import PACKAGES
from app.eval.evaluate import pending_chunks, read_predictions
from app.eval.generate import BACKENDS
from app.launch.stages import eval_stage
from app.rundir.manifest import record_partial, seal_write
from app.rundir.run_dir import RunDir
from app.spec.run_spec import EvalSpec, load_spec

REPO = Path(__file__).resolve().parents[2]
STUDY_RUNS = sorted((REPO / "docs" / "cpu_study" / "runs").glob("*"))


def test_two_evals_are_byte_identical(base_spec, tmp_path):
    spec = load_spec(base_spec)
    run_a, metrics = eval_stage(spec, tmp_path / "a", progress=False)
    run_b, _ = eval_stage(spec, tmp_path / "b", progress=False)
    pa, pb = run_a.file("predictions.jsonl"), run_b.file("predictions.jsonl")
    assert pa.read_bytes() == pb.read_bytes()
    records = read_predictions(pa)
    assert len(records) == metrics["n"] == 6
    assert all(r["finish_reason"] in ("stop", "length") and len(r["prompt_sha256"]) == 64 for r in records)
    assert sum(metrics["status_counts"].values()) == 6
    assert json.loads(run_a.file("status.json").read_text())["state"] == "complete"


def test_interrupted_eval_resumes_to_same_result(base_spec, tmp_path):
    spec = load_spec(base_spec)
    whole, _ = eval_stage(spec, tmp_path / "whole", progress=False)
    lines = whole.file("predictions.jsonl").read_text().splitlines(keepends=True)
    # Simulate a kill after the first chunk of 4 plus a torn, half-written line.
    cut = tmp_path / "cut"
    first = run_stages_dir(spec, cut)
    first.mkdir(parents=True)
    for name in ("spec.json", "data.json"):
        seal_write(RunDir(first), name, whole.file(name).read_bytes())
    (first / "predictions.jsonl").write_text("".join(lines[:4]))
    record_partial(RunDir(first), "predictions.jsonl")  # what the eval records after each chunk
    with (first / "predictions.jsonl").open("a") as fh:
        fh.write(lines[4][:30])
    resumed, metrics = eval_stage(spec, cut, progress=False)
    assert resumed.file("predictions.jsonl").read_bytes() == whole.file("predictions.jsonl").read_bytes()
    assert metrics["resumed_with"] == 4


def run_stages_dir(spec, root: Path) -> Path:
    from app.rundir.run_dir import run_dir_name
    from app.spec.run_spec import spec_hash

    return root / run_dir_name(spec.name, spec_hash(spec))


def test_backends_are_one_table():
    """The spec offers exactly generate.BACKENDS, and env.json records every backend's packages."""
    assert set(get_args(EvalSpec.model_fields["backend"].annotation)) == set(BACKENDS)
    assert all(p in PACKAGES for cls in BACKENDS.values() for p in cls.packages)


def test_pending_chunks_are_fixed_by_index():
    assert pending_chunks(10, 4, set()) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert pending_chunks(10, 4, {0, 1, 2, 3, 4}) == [[4, 5, 6, 7], [8, 9]]


def test_resume_refuses_a_corrupt_middle_prediction(base_spec, tmp_path):
    """A damaged line inside the prefix the manifest vouches for stops the eval before it writes anything;
    vouched for by a forged manifest, it is an error naming file:line (never a silently smaller n)."""
    from app.errors import IntegrityError, UserError
    from tests.helpers import snapshot

    spec = load_spec(base_spec)
    whole, _ = eval_stage(spec, tmp_path / "whole", progress=False)
    lines = whole.file("predictions.jsonl").read_text().splitlines(keepends=True)
    first = run_stages_dir(spec, tmp_path / "cut")
    first.mkdir(parents=True)
    for name in ("spec.json", "data.json"):
        seal_write(RunDir(first), name, whole.file(name).read_bytes())
    pred = first / "predictions.jsonl"
    pred.write_text("".join(lines[:4]))
    record_partial(RunDir(first), "predictions.jsonl")
    pred.write_text(lines[0] + lines[1][:25] + "\n" + "".join(lines[2:4]))
    before = snapshot(first)
    with pytest.raises(IntegrityError, match=f"^{pred}: its first .* bytes differ from manifest.json"):
        eval_stage(spec, tmp_path / "cut", progress=False)
    assert {k: v for k, v in snapshot(first).items() if k != ".lock"} == before
    record_partial(RunDir(first), "predictions.jsonl")  # a forged manifest now vouches for the damage
    with pytest.raises(UserError, match=f"^{pred}:2: invalid JSON"):
        eval_stage(spec, tmp_path / "cut", progress=False)
    assert pred.read_text().splitlines()[1] == lines[1][:25]


# What eval_metrics.json records beside its metrics: facts of the session that made it (app/eval/evaluate.py)
# and of a rescore (app/eval/rescore.py), not recomputable from predictions.jsonl.
SESSION_FACTS = {"engine", "max_new_tokens", "stop", "determinism", "model_source", "rescored"}
SESSION_FACTS |= {"wall_s", "tokens_per_s", "generated_tokens", "resumed_with"}


@pytest.mark.parametrize("run", STUDY_RUNS, ids=[p.name for p in STUDY_RUNS])
def test_committed_study_metrics_reproduce_with_the_current_grader(run):
    """Recorded ⊆ current: every metric a published run recorded is recomputed to the same value; a
    metric added since needs no rescore of published runs."""
    from app.eval.evaluate import read_predictions, regrade
    from app.eval.metrics import summarize

    recorded = json.loads((run / "eval_metrics.json").read_text())
    current = summarize(regrade(read_predictions(run / "predictions.jsonl")))
    assert set(recorded) - SESSION_FACTS <= set(current), "a recorded metric is no longer computed"
    for key in set(recorded) - SESSION_FACTS:
        assert recorded[key] == current[key], key


CHUNKS_SCRIPT = """
import sys
from pathlib import Path

from transformers import AutoTokenizer

from app.eval.evaluate import build_prompts, generate_missing
from app.eval.generate import GenSettings, open_generator
from app.inputs.gsm8k import select_eval
from app.inputs.prompts import get_template

if __name__ == "__main__":  # vLLM may start worker processes
    model, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    tokenizer = AutoTokenizer.from_pretrained(model)
    prompts = build_prompts(tokenizer, get_template("r1_zero_v1"), select_eval(data, "test", None))
    cfg = GenSettings("float32", 24, ("</answer>",), 0, max(len(p["ids"]) for p in prompts) + 24)
    with open_generator("vllm", model, cfg) as gen:
        for chunk in (1, 7, 64, len(prompts)):
            generate_missing(gen, prompts, out / f"chunk{chunk}.jsonl", chunk, {})
"""


@pytest.mark.faults
def test_vllm_cpu_predictions_do_not_depend_on_the_chunk_size(tiny_qwen_dir, mini_gsm8k, tmp_path):
    """One engine, the same prompts submitted 1, 7, 64 and all at a time: the same bytes each way, so
    chunks are resume points only (resume after a kill: the eval fault points in tests/faults)."""
    import subprocess
    import sys

    script = tmp_path / "chunks.py"
    script.write_text(CHUNKS_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tiny_qwen_dir), str(mini_gsm8k), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = {p.name: p.read_bytes() for p in sorted(tmp_path.glob("chunk*.jsonl"))}
    assert sorted(files) == ["chunk1.jsonl", "chunk12.jsonl", "chunk64.jsonl", "chunk7.jsonl"]
    first = files["chunk1.jsonl"]
    assert len(first.splitlines()) == 12 and any(json.loads(ln)["n_tokens"] > 1 for ln in first.splitlines())
    assert all(data == first for data in files.values())


def test_large_engine_chunks_only_where_kernels_are_batch_invariant():
    from app.eval.evaluate import ENGINE_CHUNK, submit_chunk

    assert submit_chunk(64, {"backend": "vllm", "batch_invariant": False}) == 64
    assert submit_chunk(64, {"backend": "hf"}) == 64
    assert submit_chunk(64, {"backend": "vllm", "batch_invariant": True}) == ENGINE_CHUNK
    assert submit_chunk(4096, {"backend": "vllm", "batch_invariant": True}) == 4096
