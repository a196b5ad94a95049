"""GSM8K rows from a directory or the hub: validation, gold parsing, nested subsets, fingerprints.

Pure: no torch import (`datasets` is imported only when reading from the hub).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from app.errors import UserError
from app.inputs.canonical_numbers import canonical_number
from app.rundir import jsonl
from app.rundir.run_dir import sha256_file
from app.spec.run_spec import HUB_DATASET

SPLITS = ("train", "test")
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"
FULL_SIZES = {"train": 7473, "test": 1319}


@dataclass(frozen=True)
class Example:
    """One GSM8K row; `gold` is the canonical number after `####`."""

    id: str
    question: str
    answer: str
    gold: str


def resolve_source(source: str) -> Path | str:
    """'local' → GSM8K_DIR or the shared copy; the hub id (`openai/gsm8k[@REV]`) stays a str; else a path."""
    if source.partition("@")[0] == HUB_DATASET:
        return source
    if source == "local":
        env = os.environ.get("GSM8K_DIR")
        return Path(env) if env else DEFAULT_DIR
    return Path(source)


def parse_gold(answer: str) -> str | None:
    """Canonical number from the answer's final `#### N` line, or None."""
    lines = [ln for ln in answer.strip().splitlines() if ln.strip()]
    if not lines or not lines[-1].lstrip().startswith("####"):
        return None
    return canonical_number(lines[-1].split("####", 1)[1])


def parse_row(raw: object, where: str, row_id: str) -> Example:
    """Validate one decoded row; `where` names file and line in errors."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a JSON object")
    for key in ("question", "answer"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise UserError(f"{where}: missing or empty '{key}'")
    gold = parse_gold(raw["answer"])
    if gold is None:
        raise UserError(f"{where}: answer has no final '#### N' line with a number")
    return Example(row_id, raw["question"], raw["answer"], gold)


def read_jsonl(path: Path, split: str) -> list[Example]:
    """Read and validate every line of a GSM8K JSONL file (a blank or bad line is an error naming it)."""
    if not path.is_file():
        raise UserError(f"{path}: GSM8K file not found (set data.source or GSM8K_DIR)")
    records = jsonl.read_jsonl(path, torn_tail=False)  # input data: no line is ever skipped
    return [parse_row(raw, f"{path}:{i}", f"{split}-{i - 1:05d}") for i, raw in enumerate(records, start=1)]


def read_hub(source: str, split: str) -> list[Example]:
    """Read a split of the fetched, verified openai/gsm8k snapshot (`repro fetch`; no network here)."""
    import pyarrow.parquet as pq  # only needed for hub sources

    from app.inputs.hub import dataset_snapshot

    snapshot, _ = dataset_snapshot(source)
    files = sorted((snapshot / "main").glob(f"{split}-*.parquet"))
    if not files:
        raise UserError(f"data.source: {snapshot}/main has no {split}-*.parquet; run `repro fetch --refresh SPEC`")
    rows = [r for f in files for r in pq.read_table(f, columns=["question", "answer"]).to_pylist()]
    return [parse_row(r, f"{source}[{split}][{i}]", f"{split}-{i:05d}") for i, r in enumerate(rows)]


def load_split(source: str, split: str) -> list[Example]:
    """All validated rows of `split` from `source`."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {SPLITS}")
    where = resolve_source(source)
    if isinstance(where, str):
        return read_hub(where, split)
    if not where.is_dir():
        raise UserError(f"{where}: GSM8K directory not found (data.source or GSM8K_DIR)")
    return read_jsonl(where / f"{split}.jsonl", split)


def nested_indices(n_rows: int, size: int | str, seed: int) -> list[int]:
    """First `size` entries of one seeded permutation: sizes nest for a fixed seed."""
    k = n_rows if size == "full" else int(size)
    if k > n_rows:
        raise UserError(f"data.train_size: {k} is larger than the {n_rows} training rows")
    order = list(range(n_rows))
    random.Random(seed).shuffle(order)
    return order[:k]


def rows_sha256(rows: list[Example]) -> str:
    """sha256 over the selected rows, in order, as canonical JSON lines."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(asdict(row), sort_keys=True).encode() + b"\n")
    return h.hexdigest()


def source_hashes(source: str) -> dict[str, str]:
    """sha256 of each split file: the directory's `{split}.jsonl`, or the fetched hub snapshot's files."""
    where = resolve_source(source)
    if isinstance(where, str):
        from app.inputs.hub import dataset_snapshot

        return {rel: meta["sha256"] for rel, meta in dataset_snapshot(where)[1]["files"].items()}
    return {f"{s}.jsonl": sha256_file(where / f"{s}.jsonl") for s in SPLITS if (where / f"{s}.jsonl").exists()}


def select_train(source: str, size: int | str, seed: int) -> list[Example]:
    rows = load_split(source, "train")
    return [rows[i] for i in nested_indices(len(rows), size, seed)]


def select_eval(source: str, split: str, limit: int | None) -> list[Example]:
    rows = load_split(source, split)
    return rows[:limit] if limit else rows


def data_fingerprint(source: str, size: int | str, seed: int, split: str, limit: int | None) -> dict:
    """Everything needed to check later that the same rows were used."""
    train_rows = load_split(source, "train")
    chosen = [train_rows[i] for i in nested_indices(len(train_rows), size, seed)]
    eval_rows = select_eval(source, split, limit)
    return {
        **source_record(source),
        "source_sha256": source_hashes(source),
        "train_rows_available": len(train_rows),
        "train_size": len(chosen),
        "subset_seed": seed,
        "train_subset_sha256": rows_sha256(chosen),
        "train_first_ids": [r.id for r in chosen[:5]],
        "eval_split": split,
        "eval_size": len(eval_rows),
        "eval_rows_sha256": rows_sha256(eval_rows),
    }


def source_record(source: str) -> dict:
    """`source` (the directory read, or the hub id) and, for the hub, `hub`: id, revision, commit, files."""
    where = resolve_source(source)
    if not isinstance(where, str):
        return {"source": str(where), "source_kind": "directory"}
    from app.inputs.hub import dataset_snapshot

    return {"source": where, "source_kind": "hub", "hub": dataset_snapshot(where)[1]}


def check_spec_data(source: str, size: int | str | None, eval_split: str = "test") -> list[str]:
    """Problems a spec's data section has against the real data (empty list when fine).

    A local directory is read with the loader itself, so `repro validate` and training agree on
    every blank or bad row (named file:line)."""
    where = resolve_source(source)
    if isinstance(where, str):
        n = FULL_SIZES["train"]
    elif not where.is_dir():
        return [f"data.source: directory {where} not found (set GSM8K_DIR or data.source)"]
    else:
        try:
            n = len(load_split(source, "train"))
            if eval_split != "train":
                load_split(source, eval_split)
        except UserError as exc:
            return [f"data.source: {exc}"]
    if size is not None and size != "full" and int(size) > n:
        return [f"data.train_size: {size} is larger than the {n} training rows"]
    return []
