"""Stage progress: a live bar on a terminal, plain timestamped lines in a file (batch jobs, CI).

A bar redrawn in place turns into one line written at the end when output is a file, which says
nothing while a 4-hour Slurm task runs. So when stderr is not a terminal we print a plain line
every `REPRO_PROGRESS_SECONDS` (default 10) seconds and at the end:

    2026-11-29T08:01:02Z train step 12/40 (30%) loss 1.2345 lr 2.00e-05 tok/s 160 elapsed 0:01:02 eta 0:02:25

Pure: no torch imports.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

DEFAULT_EVERY_S = 10.0


def hms(seconds: float) -> str:
    """Whole seconds as H:MM:SS."""
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_line(
    label: str, unit: str, done: int, total: int, start: int, elapsed: float, tokens: int, extra: str = ""
) -> str:
    """One progress line; rate and ETA come from this session's work only (a resume starts at `start`)."""
    pct = 100 * done / total if total else 100.0
    parts = [f"{label} {unit} {done}/{total} ({pct:.0f}%)"]
    if extra:
        parts.append(extra)
    if elapsed > 0 and tokens:
        parts.append(f"tok/s {tokens / elapsed:.0f}")
    parts.append(f"elapsed {hms(elapsed)}")
    session = done - start
    if session > 0 and done < total:
        parts.append(f"eta {hms(elapsed / session * (total - done))}")
    return " ".join(parts)


def every_seconds() -> float:
    return float(os.environ.get("REPRO_PROGRESS_SECONDS", DEFAULT_EVERY_S))


class Reporter:
    """Progress of one stage; `update(done, tokens=…, extra=…)` after each unit of work."""

    def __init__(
        self,
        label: str,
        total: int,
        start: int = 0,
        unit: str = "step",
        enabled: bool = True,
        stream: TextIO | None = None,
    ):
        self.label, self.unit, self.total, self.start = label, unit, total, start
        self.stream = stream or sys.stderr
        self.t0 = time.time()
        self.last_print: float | None = None
        self.bar = None
        self.plain = enabled and not self.stream.isatty()
        if enabled and not self.plain:
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(file=self.stream),
        )
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=self.total, completed=self.start, info="")

    def update(self, done: int, tokens: int = 0, extra: str = "") -> None:
        """`done` units complete so far; `tokens` processed in this session."""
        if self.bar is not None:
            self.bar.update(self.task, completed=done, info=extra)
            return
        now = time.time()
        due = self.last_print is None or now - self.last_print >= every_seconds() or done >= self.total
        if self.plain and due:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
            line = format_line(self.label, self.unit, done, self.total, self.start, now - self.t0, tokens, extra)
            print(f"{stamp} {line}", file=self.stream, flush=True)
            self.last_print = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
