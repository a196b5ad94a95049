"""Every shipped spec validates; malformed specs each give exit 2 and one line naming file and field."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.spec.run_spec import RunSpec, SpecError, load_spec, parse_spec, spec_hash
from tests.helpers import repro

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "specs").rglob("*.json"))
BASE = {"name": "x", "train": {"epochs": 1}}


@pytest.mark.parametrize("path", SPECS, ids=[str(p.relative_to(REPO)) for p in SPECS])
def test_shipped_spec_validates(path, real_gsm8k):
    spec = load_spec(path)
    assert spec.name and len(spec_hash(spec)) == 64
    out = repro("validate", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"OK {path} {spec_hash(spec)}")


def test_hash_is_canonical_and_sensitive():
    a = parse_spec(json.dumps({"name": "x", "seed": 1}))
    b = parse_spec(json.dumps({"seed": 1, "name": "x", "eval": {}}))
    c = parse_spec(json.dumps({"name": "x", "seed": 2}))
    assert spec_hash(a) == spec_hash(b) != spec_hash(c)


def test_spec_is_frozen():
    spec = RunSpec(name="x")
    with pytest.raises(ValidationError):
        spec.seed = 3  # type: ignore[misc]


MALFORMED = {
    "empty": ("", "empty file"),
    "not_json": ("{name: x}", "invalid JSON"),
    "array": ("[1, 2]", "expected a JSON object"),
    "unknown_key": (json.dumps({**BASE, "colour": "red"}), "colour"),
    "unknown_nested": (json.dumps({"name": "x", "train": {"epochs": 1, "lrr": 1}}), "train.lrr"),
    "wrong_type": (json.dumps({"name": "x", "seed": "zero"}), "seed"),
    "negative_lr": (json.dumps({"name": "x", "train": {"epochs": 1, "lr": -1}}), "train.lr"),
    "two_budgets": (json.dumps({"name": "x", "train": {"epochs": 1, "max_steps": 3}}), "train"),
    "no_budget": (json.dumps({"name": "x", "train": {}}), "train"),
    "bad_mask": (json.dumps({"name": "x", "train": {"epochs": 1, "loss_mask": "all"}}), "train.loss_mask"),
    "temperature": (json.dumps({"name": "x", "eval": {"temperature": 0.7}}), "eval.temperature"),
    "bad_name": (json.dumps({"name": "../escape"}), "name"),
    "zero_size": (json.dumps({"name": "x", "data": {"train_size": 0}}), "data"),
    "missing_name": (json.dumps({"seed": 1}), "name"),
    "huge_accum": (json.dumps({"name": "x", "train": {"epochs": 1, "grad_accum": 0}}), "train.grad_accum"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_spec_exit_2_one_line(case, tmp_path):
    text, needle = MALFORMED[case]
    path = tmp_path / f"{case}.json"
    path.write_text(text)
    out = repro("validate", str(path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"error: {path}") for line in lines), out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr


def test_load_spec_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"train": {"lrr": 1e-5}}, "train.lrr: Extra inputs are not permitted; did you mean `lr`?"),
        ({"modle": {}}, "modle: Extra inputs are not permitted; did you mean `model`?"),
        (
            {"eval": {"max_new_token": 5}},
            "eval.max_new_token: Extra inputs are not permitted; did you mean `max_new_tokens`?",
        ),
        ({"eval": {"zzz": 5}}, "eval.zzz: Extra inputs are not permitted"),  # nothing close: no guess
    ],
)
def test_a_misspelt_key_gets_a_suggestion(tmp_path, raw, line):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "x", **raw}))
    out = repro("validate", str(path))
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [f"error: {path}: {line}"], out.stderr


def test_validate_of_a_directory_is_one_line(tmp_path):
    out = repro("validate", str(tmp_path))
    assert out.returncode == 2 and out.stderr.strip() == f"error: {tmp_path}: is a directory, not a spec file"


def _train(**kw):
    from app.spec.run_spec import TrainSpec

    return TrainSpec(max_steps=1, **kw)


def test_global_batch_fixes_the_step_whatever_the_process_count():
    t = _train(micro_batch_size=2, global_batch=16)
    assert t.grad_accum == 8  # derived: the one-process accumulation
    assert [t.accumulation(w) for w in (1, 2, 4, 8)] == [8, 4, 2, 1]
    assert [t.micro_batch_size * t.accumulation(w) * w for w in (1, 2, 4, 8)] == [16] * 4


def test_without_global_batch_the_step_grows_with_the_process_count():
    t = _train(micro_batch_size=2, grad_accum=4)
    assert [t.micro_batch_size * t.accumulation(w) * w for w in (1, 2)] == [8, 16]


def test_global_batch_that_a_process_count_cannot_split_is_one_line():
    from app.errors import UserError

    t = _train(micro_batch_size=2, global_batch=12)
    with pytest.raises(UserError, match=r"train.global_batch 12 is not divisible by micro_batch_size 2 × 4 process"):
        t.accumulation(4)


def test_global_batch_must_agree_with_an_explicit_grad_accum():
    with pytest.raises(ValidationError, match="global_batch 16 must equal micro_batch_size 2 × grad_accum 4"):
        _train(micro_batch_size=2, grad_accum=4, global_batch=16)
    assert _train(micro_batch_size=2, grad_accum=8, global_batch=16).global_batch == 16


def test_global_batch_keeps_old_hashes_and_names_a_new_recipe():
    base = {"name": "x", "train": {"max_steps": 1, "micro_batch_size": 2, "grad_accum": 8}}
    same_step = RunSpec.model_validate(base)
    fixed = RunSpec.model_validate({**base, "train": {**base["train"], "global_batch": 16}})
    assert spec_hash(same_step) != spec_hash(fixed)  # one recipe whatever the count is another recipe
    assert spec_hash(RunSpec.model_validate(base)) == spec_hash(same_step)
