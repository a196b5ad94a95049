"""app/rundir/manifest.py is the only writer of manifest.json: no other module of app/ passes the
manifest's name to a write, and every manifest written while a stage seals, a rescore rewrites and a
publish copies is written from inside it."""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from app.rundir.layout import MANIFEST_JSON
from app.rundir.manifest import read_manifest, seal_write, sealed_stage
from app.rundir.run_dir import RunDir

REPO = Path(__file__).resolve().parents[2]
STUDY_RUN = next((REPO / "docs" / "cpu_study" / "runs").glob("cpu_orig_128-*"))
OWNER = "rundir/manifest.py"
# Calls that create, replace or extend a file.
WRITES = {
    "write_json",
    "write_text",
    "write_bytes",
    "atomic_write_json",
    "atomic_write_bytes",
    "append_bytes",
    "seal_write",
    "seal_json",
    "copy",
    "copy2",
    "copyfile",
    "move",
    "replace",
    "rename",
    "open",
    "dump",
}


def _callee(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def _names_manifest(node: ast.AST) -> bool:
    return any(
        (isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.endswith(MANIFEST_JSON))
        or (isinstance(n, ast.Name) and n.id == "MANIFEST_JSON")
        or (isinstance(n, ast.Attribute) and n.attr == "MANIFEST_JSON")
        for n in ast.walk(node)
    )


def manifest_writes(source: str) -> list[int]:
    """Lines of calls that write a file and name manifest.json (as a path or the call's target)."""
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and _callee(n) in WRITES]
    return sorted(c.lineno for c in calls if any(_names_manifest(a) for a in [c.func, *c.args, *c.keywords]))


def test_no_other_module_writes_the_manifest():
    found = {}
    for path in sorted((REPO / "app").rglob("*.py")):
        rel = path.relative_to(REPO / "app").as_posix()
        lines = manifest_writes(path.read_text())
        if lines:
            found[rel] = lines
    assert set(found) == {OWNER}, f"manifest.json is written outside app/{OWNER}: {found}"


def test_the_scan_sees_a_manifest_write():
    source = (
        'atomic_write_json(dest / "manifest.json", m)\n'
        "run.write_json(MANIFEST_JSON, m)\n"
        "shutil.copy2(src / layout.MANIFEST_JSON, dest)\n"
        "run.read_json(MANIFEST_JSON)\n"
    )
    assert manifest_writes(source) == [1, 2, 3]


@pytest.fixture
def manifest_writers(monkeypatch) -> list[list[str]]:
    """The modules on the stack of every rename onto a manifest.json (atomic writes end in os.replace)."""
    calls: list[list[str]] = []
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == MANIFEST_JSON:
            frame, modules = sys._getframe(1), []
            while frame is not None:
                modules.append(frame.f_globals.get("__name__", "?"))
                frame = frame.f_back
            calls.append(modules)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_every_manifest_written_by_a_stage_a_rescore_or_a_publish_comes_from_the_owner(tmp_path, manifest_writers):
    from app.eval.rescore import rescore_run
    from app.share.publish import publish

    run = RunDir(tmp_path / "staged")
    with sealed_stage(run, "eval", ["eval"]):
        run.write_text("eval_metrics.json", "{}")
    seal_write(run, "data.json", b"{}\n")
    rescored = tmp_path / STUDY_RUN.name
    shutil.copytree(STUDY_RUN, rescored)
    rescore_run(rescored)
    (out := tmp_path / "published").mkdir()
    publish([rescored], out)
    assert read_manifest(run)["files"].keys() == {"eval_metrics.json", "data.json"}
    assert json.loads((out / "runs" / rescored.name / MANIFEST_JSON).read_text())["omitted"]
    assert len(manifest_writers) >= 1 + 2 + 4 + 1  # the stage, a seal, the rescore's two seals, a publish
    assert all("app.rundir.manifest" in modules for modules in manifest_writers)
