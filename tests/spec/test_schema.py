"""The spec describes itself: descriptions on every field, `repro schema`, and docs/specs.md kept in step."""

import json
from pathlib import Path

from app.spec.run_spec import RunSpec, dump_spec, load_spec
from app.spec.schema import SPEC_DOC, _section_model, documented_fields, json_schema, spec_doc_problems
from app.train.sft_data import MASK_MODES
from tests.helpers import doc_with, repro

REPO = Path(__file__).resolve().parents[2]


def test_every_spec_field_has_a_description():
    models = [RunSpec] + [_section_model(f.annotation) for f in RunSpec.model_fields.values()]
    missing = [f"{m.__name__}.{n}" for m in models if m for n, f in m.model_fields.items() if not f.description]
    assert missing == []


def test_repro_schema_prints_the_spec_json_schema(tmp_path):
    out = repro("schema")
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert schema == json.loads(json.dumps(json_schema()))
    assert schema["additionalProperties"] is False and schema["required"] == ["name"]
    train = schema["$defs"]["TrainSpec"]["properties"]
    assert set(train["loss_mask"]["enum"]) == set(MASK_MODES) and train["lr"]["description"]


def test_committed_specs_validate_against_the_schema():
    """Every spec the repository ships is valid under the printed schema (what an editor checks)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json_schema())
    for path in sorted((REPO / "specs").rglob("*.json")):
        validator.validate(json.loads(path.read_text()))
        validator.validate(json.loads(dump_spec(load_spec(path))))  # defaults written out, too


def test_docs_name_every_spec_field_and_choice():
    doc = doc_with("## Run specs")
    assert doc == REPO / SPEC_DOC
    assert spec_doc_problems(doc.read_text()) == []


def test_spec_doc_check_catches_an_undocumented_field():
    doc = (REPO / SPEC_DOC).read_text()
    broken = doc.replace("`answer_only`", "answer_only")
    expected = "docs/specs.md: Run specs: `train.loss_mask` choice `answer_only` not documented"
    assert spec_doc_problems(broken) == [expected]
    assert "`train.save_every` not documented" in spec_doc_problems(doc.replace("`save_every`", "save_every"))[0]
    assert set(documented_fields()) == {"", "model", "data", "prompt", "train", "eval"}
