"""Finding runs (app/rundir/find.py): a run given by name or unique prefix resolves to its `<name>-<hash8>`
directory (anything else is one line), and a spec finds its own directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.errors import UserError
from app.rundir.find import find_run_dir, resolve_run
from app.rundir.run_dir import run_dir_name
from app.spec.run_spec import parse_spec, spec_hash
from tests.helpers import FIXTURE, RUN, repro


@pytest.fixture
def runs(tmp_path) -> Path:
    for name in ("cpu_B_128-3d0a2e21", "cpu_B_1024-0123abcd", "cpu_C_128-feedbeef"):
        (tmp_path / name).mkdir()
    (tmp_path / "cpu_B_128.json").write_text("{}")  # a file beside them is never a candidate
    return tmp_path


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("cpu_B_128", "cpu_B_128-3d0a2e21"),  # the spec name: exactly one hashed directory of that name
        ("cpu_C", "cpu_C_128-feedbeef"),  # a unique prefix
        ("cpu_B_1024-0123abcd", "cpu_B_1024-0123abcd"),  # the directory itself
    ],
)
def test_a_name_or_unique_prefix_resolves(runs, typed, found):
    assert resolve_run(runs / typed) == runs / found


def test_an_ambiguous_prefix_lists_its_candidates(runs):
    with pytest.raises(UserError, match=r"cpu_B: names 2 run directories: cpu_B_1024-0123abcd, cpu_B_128-3d0a2e21"):
        resolve_run(runs / "cpu_B")


def test_an_unknown_name_suggests_the_closest(runs):
    with pytest.raises(UserError, match=r"cpu_B_12x: no such run directory; did you mean \S*cpu_B_128-3d0a2e21 or "):
        resolve_run(runs / "cpu_B_12x")
    with pytest.raises(UserError) as exc:
        resolve_run(runs / "zzz")
    assert str(exc.value) == f"{runs / 'zzz'}: no such run directory"


def test_a_link_never_stands_for_a_run(runs, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "evil_run-00000000"
    elsewhere.mkdir()
    (runs / "evil_run-00000000").symlink_to(elsewhere)
    assert resolve_run(runs / "evil_run-00000000") == runs / "evil_run-00000000"  # as typed: audit refuses it
    with pytest.raises(UserError, match="no such run directory"):
        resolve_run(runs / "evil_run")


def test_commands_take_a_run_by_name(tmp_path):
    shutil.copytree(FIXTURE / RUN, tmp_path / RUN)
    out = repro("audit", str(tmp_path / "old_tiny"))
    assert out.returncode == 0 and f"AUDIT OK {tmp_path / RUN}:" in out.stdout, out.stderr
    out = repro("compare", str(tmp_path / "old_tiny"), str(tmp_path / "old_tinyy"))
    assert out.returncode == 2
    assert (
        out.stderr.strip() == f"error: {tmp_path / 'old_tinyy'}: no such run directory; did you mean {tmp_path / RUN}?"
    )


def test_a_spec_finds_its_directory_else_names_a_new_one(tmp_path):
    shutil.copytree(FIXTURE / RUN, tmp_path / RUN)
    spec = parse_spec((FIXTURE / RUN / "spec.json").read_text())
    assert find_run_dir(spec, tmp_path) == tmp_path / RUN
    other = spec.model_copy(update={"seed": spec.seed + 1})
    assert find_run_dir(other, tmp_path) == tmp_path / run_dir_name(other.name, spec_hash(other))
    assert find_run_dir(spec, tmp_path / "none") == tmp_path / "none" / run_dir_name(spec.name, spec_hash(spec))
