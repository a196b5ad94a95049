"""The run's identity hash lets the spec grow: a new field at its default renames no run, schema-v2
fields hash as they always did, and a `run:` reference is hashed by the spec name it names."""

import hashlib
import json
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel, Field, create_model

from app.spec.identity import NOT_IDENTITY, SCHEMA_V2_FIELDS, identity, referenced_name, spec_hash
from app.spec.run_spec import RunSpec, TrainSpec, parse_spec

REPO = Path(__file__).resolve().parents[2]
COMMITTED = sorted((REPO / "docs" / "cpu_study" / "runs").glob("*")) + [
    REPO / "tests/fixtures/old_run/old_tiny-40935497"
]
# A run on another run's checkpoint is hashed by the spec name it names now; app/rundir/find.py's fallback
# finds it (tests/integration/test_old_runs.py). Every other run keeps the name its hash gave it.
RUNS = [run for run in COMMITTED if '"run:' not in (run / "spec.json").read_text()]
RAW = {"name": "x", "train": {"epochs": 1}}


def field_paths(model: type[BaseModel]) -> set[str]:
    """`section.field` for every field of a RunSpec-shaped model, sections included."""
    paths = set()
    for name, field in model.model_fields.items():
        paths.add(name)
        for section in get_args(field.annotation) or (field.annotation,):  # TrainSpec | None, or ModelSpec
            if isinstance(section, type) and issubclass(section, BaseModel):
                paths |= {f"{name}.{sub}" for sub in section.model_fields}
    return paths


def test_the_schema_v2_field_set_is_frozen():
    """Generated once from schema v2; an edit to it would rename runs, so it is pinned by digest."""
    assert field_paths(RunSpec) >= SCHEMA_V2_FIELDS and NOT_IDENTITY <= SCHEMA_V2_FIELDS
    digest = hashlib.sha256("\n".join(sorted(SCHEMA_V2_FIELDS)).encode()).hexdigest()
    assert len(SCHEMA_V2_FIELDS) == 43
    assert digest == "dfba4aa6ace824ce4eb011c27645484880cafc24993cb8df5b1c507a41c7f513"


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_every_committed_run_keeps_its_directory_name(run):
    spec = parse_spec((run / "spec.json").read_text())
    assert run.name == f"{spec.name}-{spec_hash(spec)[:8]}"


def grown() -> type[RunSpec]:
    """Today's RunSpec plus a defaulted field in `train`, at top level, and a new section."""
    train = create_model(
        "GrownTrain", __base__=TrainSpec, label_smoothing=(float, Field(0.0, ge=0, lt=1, description="smoothing"))
    )
    section = create_model("Extra", __base__=BaseModel, depth=(int, 2))
    return create_model(
        "GrownSpec",
        __base__=RunSpec,
        train=(train | None, Field(None, description="training")),
        notes=(str | None, Field(None, description="a new top-level field")),
        extra=(section, Field(section(), description="a new section")),
    )


def test_a_new_field_at_its_default_hashes_as_if_it_were_absent():
    grown_spec = grown()
    today = spec_hash(RunSpec.model_validate(RAW))
    assert spec_hash(grown_spec.model_validate(RAW)) == today
    spelled_out = {**RAW, "train": {"epochs": 1, "label_smoothing": 0.0}, "notes": None, "extra": {"depth": 2}}
    assert spec_hash(grown_spec.model_validate(spelled_out)) == today


@pytest.mark.parametrize(
    ("change", "path", "value"),
    [
        ({"train": {"epochs": 1, "label_smoothing": 0.1}}, ("train", "label_smoothing"), 0.1),
        ({"notes": "hi"}, ("notes",), "hi"),
        ({"extra": {"depth": 3}}, ("extra",), {"depth": 3}),
    ],
)
def test_a_new_field_set_away_from_its_default_changes_the_hash(change, path, value):
    grown_spec = grown()
    changed = grown_spec.model_validate({**RAW, **change})
    assert spec_hash(changed) != spec_hash(grown_spec.model_validate(RAW))
    body = identity(changed)
    for key in path:
        body = body[key]
    assert body == value


def test_schema_v2_fields_stay_hashed_with_their_defaults():
    body = identity(RunSpec.model_validate(RAW))
    assert body["train"]["lr"] == 2e-5 and body["eval"]["stop"] == ["</answer>"] and body["group"] is None
    assert "schema_version" not in body and "save_every_minutes" not in body["train"]


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("cpu_P_128-7a039179", "cpu_P_128"),
        ("cpu_P_128", "cpu_P_128"),
        ("cpu_P_128-7A039179", "cpu_P_128-7A039179"),  # not a hash: upper case
        ("a-b-0123abcd", "a-b"),
        (".x-0123abcd", ".x-0123abcd"),  # the rest is not a valid spec name
    ],
)
def test_a_run_reference_names_a_spec(ref, name):
    assert referenced_name(ref) == name


def test_a_run_reference_is_hashed_by_spec_name():
    by_dir, by_name, other = (
        RunSpec.model_validate({"name": "d", "model": {"id": i}}) for i in ("run:s-0123abcd", "run:s", "run:t")
    )
    assert spec_hash(by_dir) == spec_hash(by_name) != spec_hash(other)
    assert by_dir.model.id == "run:s-0123abcd"  # the spec itself keeps what was written


def test_hash_is_canonical_json_of_the_identity():
    spec = RunSpec.model_validate(RAW)
    canonical = json.dumps(identity(spec), sort_keys=True, separators=(",", ":"))
    assert spec_hash(spec) == hashlib.sha256(canonical.encode()).hexdigest()
