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


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: a file's bytes, or a link's target (links are not followed). `.lock`
    names whichever process took it last, so only its presence counts."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = os.readlink(p)
            elif p.is_file():
                out[rel] = b"" if name == ".lock" else p.read_bytes()
    return out
