"""The house's layering, read from the source (AST, nothing imported): wings import only down, no module
imports itself round a cycle, vLLM has one door, "Pure" modules load no torch/transformers/vLLM, and no
test file imports from another.

Wing order, low to high: the top-level modules (errors, faults, progress, preempt, jsonfile, figures) < spec <
rundir < env < inputs < eval < train < launch < share < study < cli; `app/__main__.py` sits above all.
A module may import its own wing, lower wings and the top-level modules, never a higher wing.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app"
TOP_LEVEL = ("app", "app.errors", "app.faults", "app.progress", "app.preempt", "app.jsonfile", "app.figures")
WINGS = ("spec", "rundir", "env", "inputs", "eval", "train", "launch", "share", "study", "cli")
RANK = {"top": 0, **{w: i + 1 for i, w in enumerate(WINGS)}, "main": len(WINGS) + 1}
HEAVY = ("torch", "transformers", "vllm")
VLLM_DOOR = "app.eval.generate"
PURE = re.compile(r"\bPure\b")


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to a module of ours (`app.…`) or a top-level package."""

    source: str
    target: str
    line: int
    lazy: bool  # inside a function: runs only when called
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module under app/, by dotted name."""
    return {module_name(p): p for p in sorted(APP.rglob("*.py"))}


def wing(module: str) -> str:
    """The wing a module of app/ belongs to; a new top-level module must be placed here first."""
    if module in TOP_LEVEL:
        return "top"
    if module == "app.__main__":
        return "main"
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in WINGS:
        return parts[1]
    raise AssertionError(f"{module}: not in a wing; add it to TOP_LEVEL or move it into one of {WINGS}")


def resolve(source: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads: `from app.x import y` is app.x.y when that is a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the importing module's package
        package = source.split(".") if modules()[source].name == "__init__.py" else source.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    children = [f"{base}.{alias.name}" for alias in node.names]
    found = [c for c in children if c in modules()]
    return found if len(found) == len(children) else [base, *found]


def dynamic_target(node: ast.Call) -> str | None:
    """`importlib.import_module("x")` / `__import__("x")` with a literal name."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
        return str(node.args[0].value)
    return None


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def scan(source: str, tree: ast.AST) -> list[Import]:
    """Every import in a module, with whether it is lazy (inside a function) or for type checkers only."""
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool, typing_only: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lazy = True
        if isinstance(node, ast.If) and is_type_checking(node):
            typing_only = True
        targets: list[str] = []
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            targets = resolve(source, node)
        elif isinstance(node, ast.Call) and (name := dynamic_target(node)):
            targets = [name]
        found.extend(Import(source, t, node.lineno, lazy, typing_only) for t in targets)
        for child in ast.iter_child_nodes(node):
            visit(child, lazy, typing_only)

    visit(tree, False, False)
    return found


@cache
def tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(), str(path))


@cache
def imports() -> tuple[Import, ...]:
    """Every import of every module under app/."""
    return tuple(i for name in modules() for i in scan(name, tree(name)))


def ours(target: str) -> str | None:
    """The module of app/ an import target names (a module, or the package holding a name), else None."""
    while target and target not in modules():
        target = target.rpartition(".")[0]
    return target if target.startswith("app") else None


def where(i: Import) -> str:
    return f"{modules()[i.source].relative_to(REPO)}:{i.line}"


def report(title: str, lines: list[str]) -> str:
    """A failure message: the rule broken, then one offending import per line."""
    return f"{title}:\n  " + "\n  ".join(lines)


def edges(lazy: bool) -> list[tuple[str, Import]]:
    """(module of app/ imported, the import) for every import that runs: module-level ones, and those
    inside functions too when `lazy`; never those under TYPE_CHECKING."""
    return [
        (target, i)
        for i in imports()
        if (target := ours(i.target)) and target != i.source and not i.typing_only and (lazy or not i.lazy)
    ]


def runtime_graph() -> dict[str, set[str]]:
    """module → the modules of app/ that importing it loads directly. Importing a.b.c also runs the
    packages a and a.b, so they count as loaded too."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for target, i in edges(lazy=False):
        parts = target.split(".")
        graph[i.source] |= {".".join(parts[:k]) for k in range(1, len(parts) + 1)} - {i.source}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def test_every_module_is_in_a_wing():
    assert [wing(m) for m in modules()]  # raises naming the first module placed nowhere


def test_wings_import_only_their_own_lower_wings_and_the_top_level():
    bad = []
    for i in imports():
        target = ours(i.target)
        if target and RANK[wing(target)] > RANK[wing(i.source)]:
            how = " (inside a function)" if i.lazy else ""
            bad.append(f"{where(i)}: {wing(i.source)} -> {wing(target)}: imports {target}{how}")
    if bad:
        pytest.fail(report("imports of a higher wing", bad), pytrace=False)


def test_no_import_cycle():
    """No two modules depend on each other, not even through an import inside a function (a lazy import
    hides a cycle from Python, not from a reader)."""
    found = edges(lazy=True)
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for target, i in found:
        graph[i.source].add(target)
    bad = []
    for component in cycles(graph):
        bad.append(" <-> ".join(component))
        bad += [
            f"    {where(i)}: {i.source} -> {target}" + (" (inside a function)" if i.lazy else "")
            for target, i in found
            if i.source in component and target in component
        ]
    if bad:
        pytest.fail(report("import cycles, each with its imports", bad), pytrace=False)


def test_only_generate_imports_vllm():
    bad = [
        f"{where(i)}: imports {i.target}"
        for i in imports()
        if i.target.split(".")[0] == "vllm" and i.source != VLLM_DOOR
    ]
    if bad:
        pytest.fail(report(f"vllm imported outside {VLLM_DOOR}", bad), pytrace=False)


def pure_modules() -> list[str]:
    return [m for m in modules() if PURE.search(ast.get_docstring(tree(m)) or "")]


def is_heavy(i: Import) -> bool:
    return i.target.split(".")[0] in HEAVY and not i.lazy and not i.typing_only


def heavy_chain(module: str, graph: dict[str, set[str]]) -> list[str] | None:
    """The module-level import chain by which importing `module` loads torch/transformers/vllm, if any."""
    heavy = {}
    for i in imports():
        if is_heavy(i):
            heavy.setdefault(i.source, i.target)
    seen = {module: [module]}
    queue = [module]
    while queue:  # breadth first: the shortest chain
        current = queue.pop(0)
        if current in heavy:
            return [*seen[current], heavy[current]]
        for nxt in sorted(graph[current] - seen.keys()):
            seen[nxt] = [*seen[current], nxt]
            queue.append(nxt)
    return None


def test_pure_modules_load_no_heavy_engine_at_import():
    """A module whose docstring says "Pure" imports no torch/transformers/vllm at module level, nor does any
    module of ours it imports at module level (so importing it never loads them)."""
    graph = runtime_graph()
    pure = pure_modules()
    assert len(pure) > 20, pure  # the marker is still in use: the test checks something
    bad = [f"{m}: {' -> '.join(chain)}" for m in pure if (chain := heavy_chain(m, graph))]
    if bad:
        pytest.fail(report("'Pure' modules that load a heavy engine at import", bad), pytrace=False)


SHARED = ("tests.helpers", "tests.conftest", "tests.hub_server")


def test_test_files_import_shared_pieces_only_from_helpers():
    """Shared test code lives in conftest.py, helpers.py (and the fake hub), never in another test file."""
    bad = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        nodes = list(ast.walk(ast.parse(path.read_text(), str(path))))
        names = [a.name for n in nodes if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in nodes if isinstance(n, ast.ImportFrom)]
        bad += [f"{path.relative_to(REPO)} imports {n}" for n in names if n.startswith("tests") and n not in SHARED]
    if bad:
        pytest.fail(
            report("test files importing another test file (move the piece into tests/helpers.py)", bad), pytrace=False
        )


def test_the_scan_sees_lazy_typing_only_relative_and_dynamic_imports():
    source = (
        "import torch.nn\nfrom . import run_dir\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import transformers\n"
        "def f():\n    import vllm\n    importlib.import_module('app.eval.generate')\n"
    )
    found = {i.target: (i.lazy, i.typing_only) for i in scan("app.rundir.manifest", ast.parse(source))}
    assert found == {
        "torch.nn": (False, False),
        "app.rundir.run_dir": (False, False),
        "typing": (False, False),
        "transformers": (False, True),
        "vllm": (True, False),
        "app.eval.generate": (True, False),
    }
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
