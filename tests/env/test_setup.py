"""`make setup` on a machine that is not this one: the Python check, the lock split, a config-free install."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.env.lockfiles import lock_path, lock_python, requirement_blocks, split_by_index
from app.env.versions import canonical_name

REPO = Path(__file__).resolve().parents[2]
KEEP_PIP_VARS = ("PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK")  # trust and patience, not sources


def make_setup(venv_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "setup", f"VENV={venv_dir}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=1800,
    )


def test_setup_stops_at_once_on_another_python(tmp_path):
    out = make_setup(tmp_path / "venv", f"PY={sys.executable}", "PY_NEEDED=3.99")
    assert out.returncode != 0
    version = f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
    first = out.stderr.splitlines()[0]
    assert first.startswith("make setup: needs Python 3.99") and f"Python {version}" in first
    assert "uv python install 3.99" in first
    assert not (tmp_path / "venv").exists()


def test_setup_needs_the_python_the_lock_names():
    """PY_NEEDED is read from the lock's header, so it follows `make lock`."""
    out = subprocess.run(["make", "-n", "setup", "VENV=/nonexistent"], cwd=REPO, capture_output=True, text=True)
    needed = lock_python(lock_path("dev-cpu"))
    assert f"needs Python {needed} " in out.stdout


def test_requires_python_agrees_with_the_code_and_the_locks():
    """tomllib (app/env/lockfiles.py) needs 3.11; every lock's Python must satisfy requires-python."""
    import tomllib

    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in re.fullmatch(r">=(\d+)\.(\d+)", spec).groups())
    assert minimum >= (3, 11), spec
    for lock in sorted((REPO / "lockfiles").glob("*.txt")):
        locked = tuple(int(x) for x in lock_python(lock).split("."))
        assert locked >= minimum, f"{lock.name}: python {locked} < requires-python {spec}"


def test_lock_split_puts_only_local_builds_on_the_wheel_index(tmp_path):
    blocks = requirement_blocks(lock_path("dev-cpu").read_text().splitlines())
    pypi, index = split_by_index(lock_path("dev-cpu"), tmp_path)
    pypi_lines, index_lines = pypi.read_text().splitlines(), index.read_text().splitlines()
    assert [b.split()[0] for b in index_lines] == ["torch==2.13.0+cpu"]
    assert sorted(pypi_lines + index_lines) == sorted(blocks)
    assert all("--hash=sha256:" in b for b in pypi_lines + index_lines)


def canonical(pin: str) -> str:
    """`Typing_Extensions==4.1` → `typing-extensions==4.1` (PEP 503 names, as pip freeze and locks differ)."""
    name, version = pin.split("==")
    return f"{canonical_name(name)}=={version}"


def machine_find_links() -> Path | None:
    """The wheel folder this machine's pip configuration adds, if any (here: torch's +cpu wheel only)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    found = re.search(r"find-links='([^']+)'", out.stdout)
    return Path(found.group(1)) if found else None


@pytest.mark.install
def test_make_setup_installs_from_pypi_without_machine_pip_config(tmp_path):
    """The README's first command with pip's machine configuration off: PyPI (and torch's wheel) only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in KEEP_PIP_VARS}
    env["PIP_CONFIG_FILE"] = "/dev/null"
    wheels = machine_find_links()
    if wheels is not None:  # where PyTorch's index is unreachable (here), its wheel from that folder, alone
        assert {p.name.split("-")[0] for p in wheels.iterdir()} == {"torch"}  # so nothing else comes from it
        env["PIP_FIND_LINKS"] = str(wheels)
    out = make_setup(tmp_path / "venv", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    py = tmp_path / "venv" / "bin" / "python"
    freeze = subprocess.run(
        [py, "-m", "pip", "freeze", "--all", "--exclude-editable"], capture_output=True, text=True
    ).stdout
    pinned = {canonical(b.split()[0]) for b in requirement_blocks(lock_path("dev-cpu").read_text().splitlines())}
    installed = {canonical(ln) for ln in freeze.splitlines() if "==" in ln and not ln.startswith("pip==")}
    assert installed == pinned  # exactly the lock: nothing missing, nothing extra
    check = "import torch, transformers, vllm, app.cli; print(torch.__version__)"
    assert subprocess.run([py, "-c", check], capture_output=True, text=True).stdout.strip() == "2.13.0+cpu"
