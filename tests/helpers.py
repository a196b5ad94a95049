"""Shared test helpers."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def repro(*args: str, env: dict | None = None, cwd: Path = REPO, timeout: int = 1500) -> subprocess.CompletedProcess:
    """Run `python -m app ARGS` as a user would, capturing output."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
