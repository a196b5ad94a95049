"""The docs stay short and connected: the README fits on a screen or two, and no relative link is dead."""

import json
import re
from pathlib import Path

from tests.helpers import REPO, doc_files

README_MAX_LINES = 160
LINK = re.compile(r"\]\(([^)\s]+)\)")


def linked_docs() -> list[Path]:
    """README.md, docs/*.md and the study's pages (docs/cpu_study/*.md); run directories' files excluded."""
    return sorted({*doc_files(), *(p for p in (REPO / "docs").rglob("*.md") if "runs" not in p.parts)})


def prose(text: str) -> str:
    """`text` without fenced code blocks and inline code spans (a `](x)` there is not a link)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file (lower case, punctuation dropped, spaces → -)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(path.read_text()), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def dead_links(path: Path, root: Path = REPO) -> list[str]:
    """`file: target` (file relative to `root`) for each relative link in `path` whose file or anchor is missing."""
    dead = []
    for target in LINK.findall(prose(path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
            dead.append(f"{path.relative_to(root)}: {target}")
    return dead


def test_readme_fits_on_a_screen_or_two():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move reference text into docs/"


def test_every_relative_link_in_the_docs_resolves():
    files = linked_docs()
    assert {"README.md", "docs/specs.md", "docs/cpu_study/FINDINGS.md"} <= {str(p.relative_to(REPO)) for p in files}
    assert [d for p in files for d in dead_links(p)] == []


def test_the_link_check_catches_a_dead_file_and_a_dead_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\n## Old run directories\n\n[x](b.md) [y](#old-run-directories)\n")
    links = "[back](a.md#old-run-directories) [gone](a.md#no-such) [lost](c.md) `[w](e.md)`"
    (tmp_path / "b.md").write_text(links + "\n```\n[z](d.md)\n```\n")
    assert dead_links(tmp_path / "b.md", tmp_path) == ["b.md: a.md#no-such", "b.md: c.md"]
    assert dead_links(tmp_path / "a.md", tmp_path) == []


def leaf_commands(group, prefix: str = "") -> list[str]:
    """The words typed after `repro` for every command of the typer app (sub-apps walked)."""
    out = []
    for name, command in sorted(group.commands.items()):
        out += leaf_commands(command, f"{prefix}{name} ") if hasattr(command, "commands") else [prefix + name]
    return out


def test_every_command_and_make_target_is_in_the_reference():
    """docs/commands.md names every `repro` command (`repro NAME` in its Commands table) and every make target."""
    import typer

    from app.cli import app

    doc = (REPO / "docs" / "commands.md").read_text()
    commands = leaf_commands(typer.main.get_command(app))
    targets = re.findall(r"^([\w-]+):.*##", (REPO / "Makefile").read_text(), flags=re.M)
    assert len(commands) > 20 and "setup" in targets
    assert [c for c in commands if not re.search(rf"^\| `repro {re.escape(c)}[` ]", doc, flags=re.M)] == []
    missing = [t for t in targets if not re.search(rf"`make {re.escape(t)}[` ]", doc) and t not in ("help", "clean")]
    assert missing == []


def test_every_eval_metric_is_in_the_run_directory_reference():
    """docs/run-directory.md's `eval_metrics.json` list names every key `summarize` computes
    (`gen_tokens_p50`/`_p90`/`_max` counts for all three)."""
    from app.eval.metrics import summarize

    doc = (REPO / "docs" / "run-directory.md").read_text()
    keys_text = doc[doc.index("`eval_metrics.json` keys") :]
    predictions = next((REPO / "docs" / "cpu_study" / "runs").glob("cpu_B_128-*")) / "predictions.jsonl"
    metrics = summarize([json.loads(line) for line in predictions.read_text().splitlines()])

    def named(key: str) -> bool:
        base, _, suffix = key.rpartition("_")
        return f"`{key}`" in keys_text or (f"`{base}_p50`/" in keys_text and f"`_{suffix}`" in keys_text)

    assert len(metrics) > 15 and [k for k in metrics if not named(k)] == []
