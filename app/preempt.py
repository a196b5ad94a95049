"""Preemption: turn SIGUSR1/SIGTERM into a clean stop at the next safe point.

Slurm sends SIGUSR1 before the time limit (`#SBATCH --signal=B:USR1@…`, forwarded by the batch
script) and SIGTERM on preemption or `scontrol requeue`. The training loop polls `requested()` after
every optimizer step, writes a resumable checkpoint and raises `Interrupted`; a rerun (`repro run`)
resumes from it. Outside such a cooperative section (model loading, evaluation), the signal raises
`Interrupted` at once: evaluation appends whole chunks, so a rerun loses at most one chunk.
Pure: no torch imports.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterable, Iterator

SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
EXIT_CODE = 3  # `repro run` exits with this after a clean interruption; the batch script then requeues

_state = {"requested": None, "cooperative": 0}


class Interrupted(BaseException):
    """A stage stopped on request; its work so far is saved and a rerun resumes it.

    A BaseException (like KeyboardInterrupt) so that no `except Exception` swallows it.
    """


def _handler(signum: int, _frame) -> None:
    _state["requested"] = signal.Signals(signum).name
    if not _state["cooperative"]:
        raise Interrupted(f"{_state['requested']} received")


def install() -> None:
    """Route SIGUSR1 and SIGTERM to the handler (main thread only; call once per process)."""
    _state["requested"] = None
    for sig in SIGNALS:
        signal.signal(sig, _handler)


def uninstall() -> None:
    """Default signal actions again and no stop pending (for in-process callers such as tests)."""
    _state["requested"] = None
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def requested() -> str | None:
    """The name of the signal that asked for a stop, or None."""
    return _state["requested"]


def check() -> None:
    """Raise Interrupted if a stop was requested (between stages, after a cooperative block)."""
    if _state["requested"]:
        raise Interrupted(f"{_state['requested']} received")


@contextlib.contextmanager
def cooperative() -> Iterator[None]:
    """Inside this block a signal only sets the flag; the code polls `requested()` itself."""
    _state["cooperative"] += 1
    try:
        yield
    finally:
        _state["cooperative"] -= 1


def polled(items: Iterable) -> Iterator:
    """Iterate `items` in cooperative mode: the loop body polls `requested()` at safe points."""
    with cooperative():
        yield from items
