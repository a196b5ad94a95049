"""Reading JSON-lines files a run appends to, with one rule for damage.

Every line must be a JSON object; a bad line anywhere is an error naming `file:line`. The one
exception is a torn last line: a kill mid-append leaves the final line without its newline, and
that line (when it does not parse) is dropped instead (`torn_tail=True`), so an interrupted stage
can resume. Pure.
"""

from __future__ import annotations

from pathlib import Path

from app.errors import UserError
from app.jsonfile import parse_json


def parse_jsonl(text: str, where: str, torn_tail: bool = True) -> list[dict]:
    """JSON objects, one per line of `text`; `where` names the file in errors."""
    lines = text.split("\n")
    records = []
    for lineno, line in enumerate(lines, start=1):
        last = lineno == len(lines)  # text after the final newline: empty, or a torn append
        if last and not line:
            break
        try:
            rec = parse_json(line, f"{where}:{lineno}", locate=False)
        except UserError:
            if last and torn_tail:
                break
            if not line.strip():
                raise UserError(f"{where}:{lineno}: blank line") from None
            raise
        if not isinstance(rec, dict):
            raise UserError(f"{where}:{lineno}: expected a JSON object, got {type(rec).__name__}")
        records.append(rec)
    return records


def read_jsonl(path: Path, torn_tail: bool = True) -> list[dict]:
    """The records of a JSONL file ([] when it does not exist) under the rule above."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8") from None
    return parse_jsonl(text, str(path), torn_tail)
