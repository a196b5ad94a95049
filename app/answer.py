"""Grading: a strict parse of the `<answer>` span, a diagnostic last-number parse, one status.

Pure. Statuses are exclusive and checked in this order:
  truncated  – generation hit the token limit before `</answer>`
  unclosed   – generation stopped (EOS) without `</answer>`
  unparsable – `</answer>` present but the span does not hold exactly one number
  correct / wrong – the strict number against the gold number
"""

from __future__ import annotations

from dataclasses import dataclass

from app.numbers import find_numbers

GRADER_VERSION = "strict-v1"
OPEN, CLOSE = "<answer>", "</answer>"
STATUSES = ("correct", "wrong", "unparsable", "unclosed", "truncated")


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
    """The number in a closed answer span that holds exactly one number, else None."""
    span = answer_span(output)
    if span is None:
        return None
    numbers = find_numbers(span)
    return numbers[0] if len(numbers) == 1 else None


def parse_diagnostic(output: str) -> str | None:
    """Strict when it parses, otherwise the last number anywhere in the output."""
    strict = parse_strict(output)
    if strict is not None:
        return strict
    numbers = find_numbers(output)
    return numbers[-1] if numbers else None


def grade(output: str, gold: str, finish_reason: str) -> Grade:
    """Grade one generation against a canonical gold number."""
    strict = parse_strict(output)
    diagnostic = parse_diagnostic(output)
    closed = CLOSE in output
    if not closed:
        status = "truncated" if finish_reason == "length" else "unclosed"
    elif strict is None:
        status = "unparsable"
    else:
        status = "correct" if strict == gold else "wrong"
    return Grade(strict, diagnostic, status, strict == gold, diagnostic == gold)


def think_length(output: str) -> int:
    """Characters before `</think>` (the whole output when the tag never appears)."""
    pos = output.find("</think>")
    return len(output) if pos < 0 else pos


def answer_position(output: str) -> int | None:
    """Character offset of the first `<answer>` tag, or None."""
    pos = output.find(OPEN)
    return None if pos < 0 else pos
