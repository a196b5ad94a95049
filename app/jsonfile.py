"""One checked JSON parse for text a user or a stranger wrote, with one-line errors naming the file.

`json.loads` raises more than `JSONDecodeError`: a `ValueError` for an integer longer than Python's
int-to-string limit, a `RecursionError` for deep nesting. Here every refusal becomes one error line
(`UserError` by default; run files pass `IntegrityError`) that names the file. Specs parse `strict`:
duplicate keys and NaN/Infinity are refused too (a hand-edited spec must mean one thing). Pure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

from app.errors import UserError

Error = Callable[[str], Exception]  # an exception class, or a function that builds one
# `"\ud800"` is valid JSON but no Unicode text: printed or hashed later, it would raise.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
MAX_INT_DIGITS = 4300  # Python's default int-to-string limit (sys.get_int_max_str_digits())


class _Refused(ValueError):
    """A parse hook's refusal; its message is the reason."""


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"an integer with {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Refused(f"{text[:20]}{'…' if len(text) > 20 else ''} is too large for a float")
    return value


def _constant(name: str) -> float:
    raise _Refused(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_json(text: str, where: str, error: Error = UserError, strict: bool = False, locate: bool = True) -> object:
    """Parse `text`; any refusal is `error("where[:line:col]: invalid JSON: why")`, one line
    (`locate=False`: no line and column, for a JSON-lines record whose `where` is already `file:line`)."""
    hooks: dict = {"parse_int": _int}
    if strict:
        hooks.update(parse_constant=_constant, parse_float=_float, object_pairs_hook=_unique_keys)
    try:
        obj = json.loads(text, **hooks)
        if _SURROGATE_ESCAPE.search(text):  # rare: only then pay for the check
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return obj
    except UnicodeEncodeError:
        raise error(f"{where}: invalid JSON: a lone surrogate escape (\\ud800-\\udfff) is not text") from None
    except json.JSONDecodeError as exc:
        at = f":{exc.lineno}:{exc.colno}" if locate else ""
        raise error(f"{where}{at}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise error(f"{where}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # _Refused, or another limit json enforces
        raise error(f"{where}: invalid JSON: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_text(path: Path, error: Error = UserError) -> str:
    """A file's UTF-8 text, or `error` naming it (missing, a directory, unreadable, not UTF-8)."""
    try:
        return Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(f"{path}: not found") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None


def read_object(path: Path, error: Error = UserError, strict: bool = False) -> dict:
    """A file holding one JSON object, or `error` naming the file."""
    obj = parse_json(read_text(path, error), str(path), error, strict)
    if not isinstance(obj, dict):
        raise error(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj
