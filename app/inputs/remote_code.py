"""No code from a bundle runs without the user saying so: who decides `model.trust_remote_code`.

A spec file the user names (SPEC) decides it itself. A spec read back from a run directory (`repro
replay`, `repro eval RUN_DIR`, `repro train RUN_DIR`) was written by whoever made the run: its
`trust_remote_code: true` is ignored unless the command line says `--trust-remote-code`, and one
line says so. The spec itself is kept as recorded (the setting is hashed into the run's name, so a
replay still lands in a directory of the same name); only model and tokenizer loading ask
`allowed`. Pure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

from app.spec.run_spec import RunSpec

_DENIED: ContextVar[bool] = ContextVar("remote_code_denied", default=False)


def allowed(spec: RunSpec) -> bool:
    """The trust_remote_code to load this spec's model and tokenizer with."""
    return bool(spec.model.trust_remote_code) and not _DENIED.get()


def ignored_line(stored: Path) -> str:
    return (
        f"note: {stored}: model.trust_remote_code: true ignored; code shipped with the model does not run "
        "(pass --trust-remote-code to allow it)"
    )


@contextlib.contextmanager
def stored_spec(spec: RunSpec, stored: Path, trust: bool, log: Callable[[str], None]) -> Iterator[None]:
    """Within this block, `spec` (read from `stored`, a run's spec.json) runs no shipped code unless
    `trust` (the command line's --trust-remote-code); says once when its setting is ignored."""
    deny = bool(spec.model.trust_remote_code) and not trust
    if deny:
        log(ignored_line(stored))
    token = _DENIED.set(deny)
    try:
        yield
    finally:
        _DENIED.reset(token)
