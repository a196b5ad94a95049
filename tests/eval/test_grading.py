"""Grader pairs: each status and number format, positive and negative."""

import pytest

from app.eval.grading import answer_span, grade, parse_diagnostic, parse_strict
from app.inputs.canonical_numbers import canonical_number, find_numbers


@pytest.mark.parametrize(
    ("output", "strict"),
    [
        (" x </think> <answer> 18 </answer>", "18"),
        ("<answer>$18.00.</answer>", "18"),
        ("<answer>1,080</answer>", "1080"),
        ("<answer>-5</answer>", "-5"),
        ("<answer>18 apples</answer>", "18"),
        ("<answer>3 + 15 = 18</answer>", None),  # more than one number
        ("<answer>eighteen</answer>", None),  # no number
        ("<answer>18", None),  # never closed
        ("18 </answer>", None),  # closed but never opened
        ("<answer>1</answer> <answer>2</answer>", "1"),  # the first closed span counts
    ],
)
def test_parse_strict(output, strict):
    assert parse_strict(output) == strict


def test_strict_takes_last_open_tag_before_the_close():
    assert answer_span("<answer> draft <answer> 7 </answer>") == " 7 "


@pytest.mark.parametrize(
    ("output", "diag"),
    [("so 3 + 4 = 7", "7"), ("<answer>3 + 4 = 7</answer>", "7"), ("<answer>12</answer> 99", "12"), ("none", None)],
)
def test_parse_diagnostic(output, diag):
    assert parse_diagnostic(output) == diag


@pytest.mark.parametrize(
    ("output", "finish", "status"),
    [
        ("<answer> 72 </answer>", "stop", "correct"),
        ("<answer> 72.0 </answer>", "stop", "correct"),
        ("<answer> 71 </answer>", "stop", "wrong"),
        ("<answer> 7 2 </answer>", "stop", "unparsable"),
        ("<answer> seventy-two </answer>", "stop", "unparsable"),
        ("the answer is 72", "stop", "unclosed_eos"),
        ("the answer is 72", "length", "truncated"),
        ("<answer> 72", "length", "truncated"),
    ],
)
def test_grade_status(output, finish, status):
    assert grade(output, "72", finish).status == status


def test_diagnostic_counts_where_strict_fails():
    g = grade("48 + 24 = 72", "72", "stop")
    assert (g.strict_correct, g.diagnostic_correct, g.status) == (False, True, "unclosed_eos")


@pytest.mark.parametrize(
    ("output", "gold", "correct"),
    [
        ("<answer> \u22125 </answer>", "-5", True),  # U+2212 MINUS SIGN is a minus
        ("<answer> \u22125 </answer>", "5", False),  # ... never dropped (was a false positive)
        ("<answer> \u20135 </answer>", "-5", True),  # en dash used as a minus
        ("<answer> \uff0d5 </answer>", "5", False),  # fullwidth hyphen-minus
        ("<answer> 3\u00bd </answer>", "3.5", True),  # a vulgar fraction is read by value
        ("<answer> 3\u00bd </answer>", "3", False),  # ... never as its integer part
        ("<answer> \u00be </answer>", "0.75", True),
        ("<answer> 5\u00b2 </answer>", "5", False),  # a superscript cannot be read by value: unparsable
        ("<answer> 18 </answer>", "18.0", True),  # gold normalised like the answer
        ("<answer> 1080 </answer>", "1,080", True),
        ("<answer> 1081 </answer>", "1,080", False),
    ],
)
def test_unicode_and_gold_pairs(output, gold, correct):
    assert grade(output, gold, "stop").strict_correct is correct


def test_unreadable_number_form_makes_the_span_unparsable():
    assert grade("<answer> 5\u00b2 </answer>", "25", "stop").status == "unparsable"
    assert parse_diagnostic("it is \u2460") is None  # a circled one is not read as anything
    assert find_numbers("pay \u22123 or 2\u00bc") == ["-3", "2.25"]


def test_statuses_and_rates_come_from_one_definition():
    """Every rate counts known statuses, every failure status is a format failure, and the metrics,
    the terminal summary and the report derive their keys from app/eval/grading.py."""
    from app.eval.grading import FORMAT_FAIL, RATES, STATUSES
    from app.eval.metrics import summarize

    assert all(set(r.statuses) <= set(STATUSES) for r in RATES)
    assert set(FORMAT_FAIL) == set(STATUSES) - {"correct", "wrong"}
    rec = {"n_tokens": 1, "think_chars": 1, "answer_pos": None, "diagnostic_correct": False, "prompt_sha256": "x"}
    metrics = summarize([{**rec, "status": s} for s in STATUSES])
    assert set(metrics["status_counts"]) == set(STATUSES)
    assert all(metrics[r.key] == len(r.statuses) / len(STATUSES) for r in RATES)


BIG = "9" * 5000  # longer than Python's int-to-string limit (sys.get_int_max_str_digits(): 4300)


@pytest.mark.parametrize(
    ("output", "gold", "status"),
    [
        (f"<answer>{BIG}</answer>", BIG, "correct"),  # compared digit for digit, never through int()
        (f"<answer>{BIG}</answer>", "18", "wrong"),
        (f"<answer>{BIG}8</answer>", BIG, "wrong"),
        (f"<answer>{BIG}.50</answer>", f"{BIG}.5", "correct"),
        ("<answer>1.00000000000000000000000000000001</answer>", "1", "wrong"),  # beyond Decimal's 28 digits
        ("<answer>0.12345678901234567890123456789012</answer>", "0.1234567890123456789012345679", "wrong"),
        ("<answer>1234567890123456789012345678901\u00bd</answer>", "1234567890123456789012345678901.5", "correct"),
        ("<answer>...18</answer>", "18", "correct"),  # an ellipsis, not a decimal point
        ("<answer>...18</answer>", "0.18", "wrong"),
        ("<answer>.18</answer>", "0.18", "correct"),  # a lone leading point still is one
    ],
)
def test_numbers_are_exact_at_any_length(output, gold, status):
    assert grade(output, gold, "stop").status == status


def test_long_number_diagnostic_and_gold_do_not_raise():
    g = grade(f"it is {BIG}", f"{BIG}.0", "stop")
    assert (g.diagnostic, g.diagnostic_correct, g.status) == (BIG, True, "unclosed_eos")
    assert canonical_number(f"-{'0' * 5000}.000") == "0" and canonical_number(f"{BIG},000") == f"{BIG}000"
    assert find_numbers("wait...18 or 2...") == ["18", "2"]
