import json
import subprocess
from pathlib import Path

import pytest

from app.errors import UserError
from app.inputs.gsm8k import data_fingerprint, load_split, nested_indices, parse_gold, read_jsonl, select_train
from tests.helpers import repro


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("a\n#### 72", "72"),
        ("#### 1,080", "1080"),
        ("x\n#### -5", "-5"),
        ("#### 3.50", "3.5"),
        ("no marker 72", None),
        ("#### seventy", None),
        ("#### 72\nextra line", None),
    ],
)
def test_parse_gold(answer, gold):
    assert parse_gold(answer) == gold


def test_real_gsm8k_counts_and_gold(real_gsm8k):
    train, test = load_split(str(real_gsm8k), "train"), load_split(str(real_gsm8k), "test")
    assert (len(train), len(test)) == (7473, 1319)
    assert train[0].gold == "72" and train[0].id == "train-00000"
    assert all(r.gold for r in train + test)


def test_nested_subsets_on_real_data(real_gsm8k):
    sizes = [128, 256, 512, 1024, "full"]
    subsets = [select_train(str(real_gsm8k), s, seed=0) for s in sizes]
    for small, big in zip(subsets, subsets[1:]):
        assert big[: len(small)] == small
    assert len(subsets[-1]) == 7473 and len({r.id for r in subsets[-1]}) == 7473
    assert select_train(str(real_gsm8k), 128, seed=1) != subsets[0]


def test_nested_indices_errors_when_too_large():
    with pytest.raises(UserError, match="data.train_size"):
        nested_indices(10, 11, 0)


def test_malformed_rows_name_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    good = json.dumps({"question": "q?", "answer": "x\n#### 3"})
    for bad, needle in [
        ("{oops", "invalid JSON"),
        (json.dumps({"question": "q"}), "'answer'"),
        (json.dumps({"question": "q", "answer": "no number"}), "####"),
    ]:
        path.write_text(good + "\n" + bad + "\n")
        with pytest.raises(UserError, match=f"{path}:2: .*{needle}"):
            read_jsonl(path, "train")


def test_fingerprint_records_hashes(mini_gsm8k):
    fp = data_fingerprint(str(mini_gsm8k), 8, 0, "test", 5)
    assert fp["train_size"] == 8 and fp["eval_size"] == 5 and len(fp["source_sha256"]["train.jsonl"]) == 64
    assert fp != data_fingerprint(str(mini_gsm8k), 8, 1, "test", 5)


def test_repro_data_cli_on_real_gsm8k(real_gsm8k, tmp_path):
    from tests.helpers import repro

    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"name": "d", "data": {"source": str(real_gsm8k), "train_size": "full"}}))
    out = repro("data", str(spec))
    assert out.returncode == 0, out.stderr
    fp = json.loads(out.stdout)
    assert fp["train_size"] == 7473 and fp["eval_size"] == 1319


def _gsm8k_dir(root: Path, train_text: str) -> Path:
    """A data directory whose test split is fine and whose train split is `train_text`."""
    good = json.dumps({"question": "q?", "answer": "x\n#### 3"})
    root.mkdir()
    (root / "test.jsonl").write_text(good + "\n")
    (root / "train.jsonl").write_text(train_text)
    return root


def _validate(tmp_path: Path, data_dir: Path) -> subprocess.CompletedProcess:
    spec = tmp_path / f"{data_dir.name}.json"
    spec.write_text(
        json.dumps({"name": "x", "data": {"source": str(data_dir), "train_size": 1}, "train": {"epochs": 1}})
    )
    return repro("validate", str(spec))


@pytest.mark.parametrize(
    "text, line, needle",
    [
        ("{good}\n\n{good}\n", 2, "blank line"),
        ("{good}\n{good}\n{{oops\n", 3, "invalid JSON"),
        ('{good}\n{{"question": "q"}}\n', 2, "'answer'"),
        ("{good}\n[1]\n", 2, "expected a JSON object"),
    ],
)
def test_validate_and_loader_agree_on_bad_rows(tmp_path, text, line, needle):
    """The loader and `repro validate` refuse the same row with the same file:line message."""
    good = json.dumps({"question": "q?", "answer": "x\n#### 3"})
    data_dir = _gsm8k_dir(tmp_path / "bad", text.format(good=good))
    with pytest.raises(UserError, match=f"{data_dir / 'train.jsonl'}:{line}: .*{needle}") as exc:
        load_split(str(data_dir), "train")
    out = _validate(tmp_path, data_dir)
    assert out.returncode == 2
    assert str(exc.value) in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize("text", ["{good}\n{good}\n", "{good}\n{good}"])  # with and without the final newline
def test_validate_and_loader_agree_on_good_rows(tmp_path, text):
    good = json.dumps({"question": "q?", "answer": "x\n#### 3"})
    data_dir = _gsm8k_dir(tmp_path / "good", text.format(good=good))
    assert [r.id for r in load_split(str(data_dir), "train")] == ["train-00000", "train-00001"]
    out = _validate(tmp_path, data_dir)
    assert out.returncode == 0 and out.stdout.startswith("OK "), out.stderr


def test_data_problems_are_reported(tmp_path, mini_gsm8k):
    too_big = tmp_path / "big.json"
    too_big.write_text(
        json.dumps({"name": "x", "data": {"source": str(mini_gsm8k), "train_size": 49}, "train": {"epochs": 1}})
    )
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"name": "x", "data": {"source": str(tmp_path / "nope")}, "train": {"epochs": 1}}))
    eval_only = tmp_path / "eval_only.json"
    eval_only.write_text(json.dumps({"name": "x", "data": {"source": str(tmp_path / "gone")}}))
    out = repro("validate", str(too_big), str(missing), str(eval_only))
    assert out.returncode == 2
    assert f"{eval_only}: data.source: directory" in out.stderr
    assert "data.train_size: 49 is larger than the 48 training rows" in out.stderr
    assert "data.source: directory" in out.stderr
