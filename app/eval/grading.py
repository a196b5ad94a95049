"""Grading: a strict parse of the `<answer>` span, a diagnostic last-number parse, one status.

Pure. This module is the one definition of the per-sample statuses, the rates they feed and their
labels: metrics, the terminal summary, the report and the criteria all derive theirs from
`STATUS_DEFS` and `RATES`. Adding a status: a `Status` here, its branch in `status_of`, docs/prompt-and-grading.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.inputs.canonical_numbers import canonical_number, number_tokens

GRADER_VERSION = "strict-v2"  # v2: unclosed counts every missing </answer>; Unicode minus/fractions; gold normalised
OPEN, CLOSE = "<answer>", "</answer>"


@dataclass(frozen=True)
class Status:
    name: str
    meaning: str


# Exclusive, in the order they are checked. "unclosed" is not a status but the family of the two
# statuses without `</answer>` (see RATES).
STATUS_DEFS = (
    Status("truncated", "no `</answer>`; generation hit max_new_tokens"),
    Status("unclosed_eos", "no `</answer>`; generation stopped (EOS or another stop) before the cap"),
    Status("unparsable", "`</answer>` present, but the span does not hold exactly one readable number"),
    Status("correct", "closed, one number, equal to the gold number"),
    Status("wrong", "closed, one number, not the gold number"),
)
STATUSES = tuple(s.name for s in STATUS_DEFS)


@dataclass(frozen=True)
class Rate:
    key: str  # eval_metrics.json key
    label: str  # report / terminal label
    statuses: tuple[str, ...]  # the share of samples whose status is one of these


RATES = (
    Rate("unclosed_rate", "unclosed", ("truncated", "unclosed_eos")),
    Rate("truncated_rate", "truncated", ("truncated",)),
    Rate("unclosed_eos_rate", "unclosed (EOS)", ("unclosed_eos",)),
    Rate("unparsable_rate", "unparsable", ("unparsable",)),
    Rate("format_fail_rate", "no parsable answer", ("truncated", "unclosed_eos", "unparsable")),
)
RATE_BY_KEY = {r.key: r for r in RATES}
# Criterion 2's per-item indicator: no closed answer holding exactly one number.
FORMAT_FAIL = RATE_BY_KEY["format_fail_rate"].statuses


@dataclass(frozen=True)
class Grade:
    strict: str | None
    diagnostic: str | None
    status: str
    strict_correct: bool
    diagnostic_correct: bool


def answer_span(output: str) -> str | None:
    """Text between the last `<answer>` before the first `</answer>` and that `</answer>`."""
    end = output.find(CLOSE)
    if end < 0:
        return None
    start = output.rfind(OPEN, 0, end)
    if start < 0:
        return None
    return output[start + len(OPEN) : end]


def parse_strict(output: str) -> str | None:
    """The number in a closed answer span that holds exactly one readable number, else None."""
    span = answer_span(output)
    if span is None:
        return None
    tokens = number_tokens(span)
    return tokens[0] if len(tokens) == 1 else None


def parse_diagnostic(output: str) -> str | None:
    """Strict when it parses, otherwise the last readable number anywhere in the output."""
    strict = parse_strict(output)
    if strict is not None:
        return strict
    numbers = [n for n in number_tokens(output) if n is not None]
    return numbers[-1] if numbers else None


def status_of(output: str, strict: str | None, gold: str, finish_reason: str) -> str:
    if CLOSE not in output:
        return "truncated" if finish_reason == "length" else "unclosed_eos"
    if strict is None:
        return "unparsable"
    return "correct" if strict == gold else "wrong"


def canonical_gold(gold: str) -> str:
    """Gold in the answers' canonical form (`18.0`, `1,080` → `18`, `1080`); kept as is if not a number."""
    return canonical_number(str(gold)) or str(gold)


def grade(output: str, gold: str, finish_reason: str) -> Grade:
    """Grade one generation against a gold number (normalised like the answers)."""
    gold = canonical_gold(gold)
    strict = parse_strict(output)
    diagnostic = parse_diagnostic(output)
    status = status_of(output, strict, gold, finish_reason)
    return Grade(strict, diagnostic, status, strict == gold, diagnostic == gold)


def think_length(output: str) -> int:
    """Characters before `</think>` (the whole output when the tag never appears)."""
    pos = output.find("</think>")
    return len(output) if pos < 0 else pos


def answer_position(output: str) -> int | None:
    """Character offset of the first `<answer>` tag, or None."""
    pos = output.find(OPEN)
    return None if pos < 0 else pos
