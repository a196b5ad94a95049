"""Canonical numbers: one string form per value, so "18.0", "18" and "$18." compare equal.

Unicode: dash-like minus signs (U+2212 and kin) are minus signs; a vulgar fraction is read by value
(`3½` is 3.5, `½` is 0.5); any other Unicode number form (superscripts, circled or Roman numerals)
cannot be read by value, so it counts as an unreadable number and never as its digits' integer part.

Exact: a number of any length keeps every digit (no int() conversion, which Python limits to 4300
digits, and no rounding to a decimal context), so two numbers are equal only when their values are.
A decimal point right after another dot is not one: `...18` is an ellipsis and 18, never 0.18.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, localcontext

# Minus sign, figure dash, en dash, small and fullwidth hyphen-minus, hyphen, non-breaking hyphen.
MINUS_SIGNS = "\u2212\u2012\u2013\ufe63\uff0d\u2010\u2011"
_TO_ASCII_MINUS = str.maketrans(dict.fromkeys(MINUS_SIGNS, "-"))


@functools.cache
def number_forms() -> tuple[str, str]:
    """(vulgar fractions, other number-form characters), from the Unicode database."""
    vulgar, other = [], []
    for cp in range(0x80, sys.maxunicode + 1):
        ch = chr(cp)
        if unicodedata.category(ch) in ("No", "Nl"):
            (vulgar if unicodedata.name(ch, "").startswith("VULGAR FRACTION") else other).append(ch)
    return "".join(vulgar), "".join(other)


@functools.cache
def number_re() -> re.Pattern:
    """A number as people write it: sign, $, thousands commas, decimals, a glued vulgar fraction."""
    vulgar, other = (re.escape(s) for s in number_forms())
    return re.compile(
        rf"(?P<num>-?\$?(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?|-?\$?(?<!\.)\.\d+)(?P<frac>[{vulgar}])?"
        rf"|(?P<lone>-?[{vulgar}])|(?P<form>[{other}]+)"
    )


def normalize_minus(text: str) -> str:
    return text.translate(_TO_ASCII_MINUS)


def canonical_number(text: str) -> str | None:
    """Return the canonical form of one written number, or None if `text` is not one.

    >>> canonical_number("$1,234.50"), canonical_number("\u221218.0"), canonical_number("7.")
    ('1234.5', '-18', '7')
    """
    cleaned = normalize_minus(text).strip().rstrip(".").replace(",", "").replace("$", "")
    if not cleaned or not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)", cleaned):
        return None
    return _canonical_text(cleaned)


def _canonical_text(plain: str) -> str:
    """`-?digits[.digits]` without leading or trailing zeros and without `-0`, by string edits only."""
    negative = plain.startswith("-")
    whole, _, frac = plain.lstrip("-").partition(".")
    whole, frac = whole.lstrip("0") or "0", frac.rstrip("0")
    text = f"{whole}.{frac}" if frac else whole
    return f"-{text}" if negative and text != "0" else text


def canonical_value(value: Decimal) -> str:
    """The canonical form of a finite Decimal, every digit kept (format "f" never rounds)."""
    return _canonical_text(format(value, "f"))


def _exact() -> Context:
    """A context in which adding two finite Decimals never rounds."""
    return Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _token(m: re.Match) -> str | None:
    """One regex match as a canonical number, or None for a number form that has no plain value."""
    if m.group("form"):
        return None
    if m.group("lone"):
        lone = m.group("lone")
        value = Decimal(str(unicodedata.numeric(lone[-1])))
        return canonical_value(-value if lone.startswith("-") else value)
    whole = canonical_number(m.group("num"))
    if whole is None or not m.group("frac"):
        return whole
    if "." in whole:
        return None  # "2.5½" has no reading
    frac = Decimal(str(unicodedata.numeric(m.group("frac"))))
    value = Decimal(whole)
    with localcontext(_exact()):  # a long whole part plus the fraction must not round
        return canonical_value(value - frac if whole.startswith("-") else value + frac)


def number_tokens(text: str) -> list[str | None]:
    """Every number in `text` in order: its canonical form, or None where it cannot be read by value."""
    return [_token(m) for m in number_re().finditer(normalize_minus(text))]


def find_numbers(text: str) -> list[str]:
    """All readable numbers in `text`, canonicalised, in order of appearance."""
    return [n for n in number_tokens(text) if n is not None]
