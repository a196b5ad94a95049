"""Rendering for `repro report`: matplotlib figures, Markdown and self-contained HTML."""

from __future__ import annotations

import html

from app.plots import new_figure, to_png

GROUP_ORDER = ("base", "orig", "A", "B", "C", "lr", "other")


def _by_group(runs) -> dict[str, list]:
    """Trained runs by group, ordered by size (the LR sweep has its own figure)."""
    groups: dict[str, list] = {}
    for r in sorted(runs, key=lambda r: r.size):
        if r.size and r.group != "lr":
            groups.setdefault(r.group, []).append(r)
    return {g: groups[g] for g in GROUP_ORDER if g in groups}


def _base_line(ax, runs, key: str) -> None:
    """The untrained model as a dashed horizontal line (it has no training size to plot at)."""
    for r in runs:
        if r.group == "base":
            ax.axhline(r.metrics[key], ls="--", color="grey", lw=1, label="base model")


def accuracynew_figure(runs) -> bytes:
    """Strict and diagnostic accuracy against training size per group, with Wilson intervals."""
    plt, fig, (ax_s, ax_d) = new_figure(1, 2, (10, 3.6))
    for group, rs in _by_group(runs).items():
        xs = [r.size for r in rs]
        acc = [r.metrics["strict_accuracy"] for r in rs]
        err = [
            [a - r.metrics["strict_ci95"][0] for a, r in zip(acc, rs)],
            [r.metrics["strict_ci95"][1] - a for a, r in zip(acc, rs)],
        ]
        ax_s.errorbar(xs, acc, yerr=err, marker="o", capsize=3, label=group)
        ax_d.plot(xs, [r.metrics["diagnostic_accuracy"] for r in rs], marker="o", label=group)
    _base_line(ax_s, runs, "strict_accuracy")
    _base_line(ax_d, runs, "diagnostic_accuracy")
    for ax, title in ((ax_s, "strict accuracy (95% Wilson CI)"), (ax_d, "diagnostic accuracy (last number)")):
        ax.set(xscale="log", xlabel="training examples", ylabel="accuracy", title=title)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    return to_png(plt, fig)


def failurenew_figure(runs) -> bytes:
    """Unclosed, unparsable and truncated rates against training size per group."""
    plt, fig, axes = new_figure(1, 3, (12, 3.4))
    for ax, key in zip(axes, ("unclosed_rate", "unparsable_rate", "truncated_rate")):
        for group, rs in _by_group(runs).items():
            ax.plot([r.size for r in rs], [r.metrics[key] for r in rs], marker="o", label=group)
        _base_line(ax, runs, key)
        ax.set(xscale="log", xlabel="training examples", ylabel="rate", title=key.replace("_", " "), ylim=(0, 1))
    axes[0].legend(fontsize=8)
    return to_png(plt, fig)


def lengthnew_figure(runs) -> bytes:
    """Histograms of generated tokens, one step line per run."""
    plt, fig, ax = new_figure(1, 1, (8, 3.4))
    top = max((r.metrics.get("gen_tokens_max") or 1) for r in runs)
    bins = list(range(0, int(top) + 17, 16))
    for r in runs:
        ax.hist([x["n_tokens"] for x in r.records], bins=bins, histtype="step", label=r.spec.name)
    ax.set(xlabel="generated tokens", ylabel="questions", title="generated length")
    ax.legend(fontsize=6, ncol=2)
    return to_png(plt, fig)


def curvesnew_figure(runs) -> bytes:
    """Training loss and LR against optimizer step for every trained run."""
    plt, fig, (ax_l, ax_r) = new_figure(1, 2, (10, 3.4))
    for r in runs:
        if r.log:
            steps = [x["step"] for x in r.log]
            ax_l.plot(steps, [x["loss"] for x in r.log], lw=1, label=r.spec.name)
            ax_r.plot(steps, [x["lr"] for x in r.log], lw=1, label=r.spec.name)
    ax_l.set(xlabel="optimizer step", ylabel="loss / supervised token", title="training loss")
    ax_r.set(xlabel="optimizer step", ylabel="learning rate", title="LR schedule")
    ax_l.legend(fontsize=6, ncol=2)
    return to_png(plt, fig)


def lrnew_figure(runs) -> bytes | None:
    """The LR sweep: answer-only cosine runs (B, C, lr) at the sweep size, against LR."""
    sizes = {r.size for r in runs if r.group == "lr"}
    sweep = sorted((r for r in runs if r.group in ("B", "C", "lr") and r.size in sizes), key=lambda r: r.spec.train.lr)
    if len(sweep) < 2:
        return None
    plt, fig, ax = new_figure(1, 1, (6, 3.4))
    lrs = [r.spec.train.lr for r in sweep]
    for key in ("strict_accuracy", "diagnostic_accuracy", "unclosed_rate"):
        ax.plot(lrs, [r.metrics[key] for r in sweep], marker="o", label=key.replace("_", " "))
    ax.set(xscale="log", xlabel="learning rate", ylabel="rate", title=f"LR sweep at {sorted(sizes)[0]} examples")
    ax.legend(fontsize=8)
    return to_png(plt, fig)


def figures(runs) -> dict[str, bytes]:
    out = {
        "accuracy.png": accuracynew_figure(runs),
        "failures.png": failurenew_figure(runs),
        "lengths.png": lengthnew_figure(runs),
    }
    if any(r.log for r in runs):
        out["curves.png"] = curvesnew_figure(runs)
    lr = lrnew_figure(runs)
    if lr is not None:
        out["lr_sweep.png"] = lr
    return out


def _check_cells(c) -> list[str]:
    p = "-" if c.p is None else f"{c.p:.3g}"
    ci = "-" if c.ci is None else f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]"
    return [c.label, c.verdict, str(c.n), f"{c.value_a:.3f}", f"{c.value_b:.3f}", p, ci]


CHECK_HEAD = ["check", "verdict", "n", "A", "B", "McNemar p", "B−A 95% CI"]


def md_table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    parts = [f"# {doc['title']}", "", "## Runs", ""]
    head = list(doc["rows"][0])
    parts += [md_table(head, [list(r.values()) for r in doc["rows"]]), "", "## Success criteria", ""]
    for c in doc["criteria"]:
        parts += [
            f"### {c['criterion']} — **{c['verdict']}**",
            "",
            md_table(CHECK_HEAD, [_check_cells(k) for k in c["checks"]]),
            "",
        ]
    parts += ["## Figures", ""] + [f"![{n}]({n})" for n in doc["figures"]] + ["", "## Environments", ""]
    parts += [f"> **warning:** {w}" for w in doc["warnings"]] or ["All runs of each stage share one environment."]
    if doc["env_rows"]:
        parts += ["", md_table(list(doc["env_rows"][0]), [list(r.values()) for r in doc["env_rows"]])]
    parts += ["", "## Run directories", ""] + [f"- `{p}`" for p in doc["runs"]]
    return "\n".join(parts) + "\n"


def html_table(head: list[str], rows: list[list]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
    "th{background:#f3f3f3}.met{color:#080}.not{color:#b00}.warn{background:#fff3cd;padding:.5em}img{max-width:100%}"
)


def html_page(doc: dict, images: dict[str, str]) -> str:
    e = html.escape
    body = [
        f"<h1>{e(doc['title'])}</h1>",
        "<h2>Runs</h2>",
        html_table(list(doc["rows"][0]), [list(r.values()) for r in doc["rows"]]),
        "<h2>Success criteria</h2>",
    ]
    for c in doc["criteria"]:
        cls = "met" if c["verdict"] == "met" else "not"
        body += [
            f"<h3>{e(c['criterion'])} — <span class='{cls}'>{e(c['verdict'])}</span></h3>",
            html_table(CHECK_HEAD, [_check_cells(k) for k in c["checks"]]),
        ]
    body += ["<h2>Figures</h2>"] + [f"<img alt='{e(n)}' src='{images[n]}'>" for n in doc["figures"]]
    body += ["<h2>Environments</h2>"] + [f"<p class='warn'>warning: {e(w)}</p>" for w in doc["warnings"]]
    if doc["env_rows"]:
        body.append(html_table(list(doc["env_rows"][0]), [list(r.values()) for r in doc["env_rows"]]))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(doc['title'])}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
