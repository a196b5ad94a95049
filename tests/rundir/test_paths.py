"""The one path rule for anything a run directory, manifest, `run:` reference or hub record names."""

import pytest

from app.errors import UserError
from app.rundir.paths import check_rel, child, entries, inside, is_safe_rel, manifest_paths


@pytest.mark.parametrize("rel", ["spec.json", "checkpoint/config.json", "logs/slurm-1_2.log", ".lock", "a..b"])
def test_plain_relative_paths_pass(rel):
    assert check_rel(rel, "here") == rel and is_safe_rel(rel)


@pytest.mark.parametrize(
    "rel", ["", "/etc/passwd", "..", "../x", "a/../../x", "a/./b", "./a", "a//b", "a/", "a\\..\\b", "a\0b", None, 3]
)
def test_anything_else_is_one_line_naming_it(rel):
    with pytest.raises(UserError) as exc:
        check_rel(rel, "manifest.json (files)")
    message = str(exc.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"manifest.json (files): {rel!r}")
    assert not is_safe_rel(rel)


def test_a_link_at_any_component_is_refused(tmp_path):
    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f").write_text("x")
    (tmp_path / "run" / "checkpoint" / "up").symlink_to("../../elsewhere")
    assert inside(tmp_path / "run", "checkpoint/absent.json", "m") == tmp_path / "run/checkpoint/absent.json"
    with pytest.raises(UserError, match=r"checkpoint/up: is a symlink \(m names 'checkpoint/up/f'\)"):
        inside(tmp_path / "run", "checkpoint/up/f", "m")
    with pytest.raises(UserError, match="is a symlink"):
        inside(tmp_path / "run", "checkpoint/up", "m")
    with pytest.raises(UserError, match="not a single directory name"):
        child(tmp_path, "run/checkpoint", "model.id")


def test_entries_lists_links_without_entering_them(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path / "d")
    assert entries(tmp_path) == [("d", "dir"), ("d/f", "file"), ("l", "link")]


def test_manifest_paths_checks_every_section():
    assert manifest_paths({"files": {"a": "0"}, "omitted": {"checkpoint/b": {}}}, "m") == ["a", "checkpoint/b"]
    with pytest.raises(UserError, match=r"m \(omitted\): '../b'"):
        manifest_paths({"files": {"a": "0"}, "omitted": {"../b": {}}}, "m")
