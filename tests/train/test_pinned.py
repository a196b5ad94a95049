"""Pinned values that must not drift: masked ids of real GSM8K rows, and the tiny model's first losses.

A change to tokenisation, prompt/target rendering, masking or loss normalisation fails one of these
by name. When such a change is intended, regenerate the pins with REPRO_UPDATE_PINS=1 and review
the diff of tests/pins/ in the commit.
"""

import json
import os
import re
from pathlib import Path

import pytest

from app.launch.stages import encode_train_set, train_stage
from app.spec.run_spec import RunSpec, load_spec
from app.train.sft_data import MASK_MODES

PINS = Path(__file__).resolve().parents[1] / "pins"
UPDATE = os.environ.get("REPRO_UPDATE_PINS") == "1"
N_ROWS = 3  # the first rows of GSM8K train.jsonl


def check_pin(name: str, actual: object) -> object:
    """Return the pinned value of `name` (writing `actual` first when REPRO_UPDATE_PINS=1)."""
    path = PINS / name
    if UPDATE:
        PINS.mkdir(exist_ok=True)
        text = json.dumps(actual, indent=1, sort_keys=True)
        text = re.sub(r"\[[-0-9.e,\s]*\]", lambda m: "".join(m.group(0).split()).replace(",", ", "), text)
        path.write_text(text + "\n")  # one line per list keeps the file small and its diffs readable
    if not path.is_file():
        pytest.fail(f"{path} missing: run with REPRO_UPDATE_PINS=1 once and commit it")
    return json.loads(path.read_text())


def masked_rows(real_gsm8k: Path, tmp_path: Path, tokenizer) -> dict:
    """input_ids and per-mode labels of the first rows, encoded exactly as training encodes them."""
    lines = (real_gsm8k / "train.jsonl").read_text().splitlines()[:N_ROWS]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.jsonl").write_text(lines[0] + "\n")
    out: dict = {}
    for mode in MASK_MODES:
        spec = RunSpec.model_validate(
            {
                "name": "pin",
                "data": {"source": str(tmp_path), "train_size": N_ROWS},
                "train": {"max_steps": 1, "loss_mask": mode},
            }
        )
        for e in encode_train_set(spec, tokenizer)[0]:
            row = out.setdefault(e.id, {"input_ids": e.input_ids, "labels": {}})
            assert row["input_ids"] == e.input_ids  # the mode never changes the ids, only the labels
            row["labels"][mode] = e.labels
    return out


def test_masked_ids_of_real_gsm8k_rows_match_snapshot(real_gsm8k, tmp_path, tokenizer):
    actual = masked_rows(real_gsm8k, tmp_path, tokenizer)
    pinned = check_pin("gsm8k_masked_rows.json", actual)
    assert sorted(actual) == sorted(pinned)
    for row_id, row in pinned.items():
        assert actual[row_id]["input_ids"] == row["input_ids"], f"{row_id}: input_ids drifted (tokenisation/prompt)"
        for mode, labels in row["labels"].items():
            assert actual[row_id]["labels"][mode] == labels, f"{row_id}: labels under loss_mask={mode} drifted"


def test_first_losses_of_tiny_model_match_golden(tiny_spec, tmp_path):
    """Fixed seed, data and random init: the first losses depend only on masking and normalisation."""
    spec = load_spec(tiny_spec(name="golden", train={"max_steps": 3}))
    run = train_stage(spec, tmp_path / "runs", progress=False)
    log = [json.loads(ln) for ln in run.file("train_log.jsonl").read_text().splitlines()]
    actual = {"loss": [r["loss"] for r in log], "supervised_tokens": [r["supervised_tokens"] for r in log]}
    pinned = check_pin("tiny_first_losses.json", actual)
    assert actual["supervised_tokens"] == pinned["supervised_tokens"]
    # Equal to float rounding: other CPUs may pick other kernels; a mask or normalisation change is far larger.
    assert actual["loss"] == pytest.approx(pinned["loss"], rel=1e-5)
