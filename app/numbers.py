"""Canonical numbers: one string form per value, so "18.0", "18" and "$18." compare equal."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# A number as people write it in GSM8K answers: optional sign and $, thousands commas, decimals.
NUMBER_RE = re.compile(r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\$?\.\d+")


def canonical_number(text: str) -> str | None:
    """Return the canonical form of one written number, or None if `text` is not one.

    >>> canonical_number("$1,234.50"), canonical_number("-18.0"), canonical_number("7.")
    ('1234.5', '-18', '7')
    """
    cleaned = text.strip().rstrip(".").replace(",", "").replace("$", "")
    if not cleaned or not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)", cleaned):
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def find_numbers(text: str) -> list[str]:
    """All numbers in `text`, canonicalised, in order of appearance."""
    found = (canonical_number(m.group(0)) for m in NUMBER_RE.finditer(text))
    return [n for n in found if n is not None]
