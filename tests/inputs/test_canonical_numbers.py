"""Numbers in one canonical form (app/inputs/canonical_numbers.py): commas, signs, currency, decimals, lists."""

import pytest

from app.inputs.canonical_numbers import canonical_number, find_numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18", "18"),
        ("18.0", "18"),
        ("18.50", "18.5"),
        ("$1,234", "1234"),
        ("-7", "-7"),
        ("7.", "7"),
        ("0.25", "0.25"),
        (".5", "0.5"),
        ("1,000,000", "1000000"),
        ("-$3", "-3"),
        ("abc", None),
        ("", None),
    ],
)
def test_canonical_number(text, expected):
    assert canonical_number(text) == expected


def test_find_numbers_handles_commas_signs_and_lists():
    assert find_numbers("paid $1,200.50 then -3 and 1,2,3") == ["1200.5", "-3", "1", "2", "3"]
