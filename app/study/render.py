"""Rendering for `repro report`: matplotlib figures, Markdown and self-contained HTML."""

from __future__ import annotations

import html

from app.eval.grading import RATE_BY_KEY
from app.figures import new_figure, to_png

GROUP_ORDER = ("base", "orig", "A", "B", "C", "lr", "P", "steps", "tokens", "decode", "other")


# The original report's strict accuracy of the original recipe at each training size.
ORIGINAL_REPORT = {128: 0.5550, 256: 0.4913, 512: 0.5064, 1024: 0.3290, 7473: 0.0417}
BUDGET_GROUPS = ("steps", "tokens")


def _by_group(runs, skip=("lr", "decode")) -> dict[str, list]:
    """Trained runs by group, ordered by size (the LR sweep and decode arms have their own tables)."""
    groups: dict[str, list] = {}
    for r in sorted(runs, key=lambda r: r.size):
        if r.size and r.group not in skip:
            groups.setdefault(r.group, []).append(r)
    return {g: groups[g] for g in GROUP_ORDER if g in groups}


def _size_axis(ax, runs) -> None:
    """Log axis of training examples, ticked at the real sizes (128 … 7473), not at powers of ten."""
    sizes = sorted({r.size for r in runs if r.size})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training examples")


def _reference_line(ax) -> None:
    xs = sorted(ORIGINAL_REPORT)
    ax.plot(xs, [ORIGINAL_REPORT[x] for x in xs], ls=":", color="black", marker="x", label="original report (orig)")


def _base_line(ax, runs, key: str) -> None:
    """The untrained model as a dashed horizontal line (it has no training size to plot at)."""
    for r in runs:
        if r.group == "base":
            ax.axhline(r.metrics[key], ls="--", color="grey", lw=1, label="base model")


def accuracy_figure(runs, reference: bool = False) -> bytes:
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
    if reference:
        _reference_line(ax_s)
    for ax, title in ((ax_s, "strict accuracy (95% Wilson CI)"), (ax_d, "diagnostic accuracy (last number)")):
        ax.set(ylabel="accuracy", title=title)
        _size_axis(ax, runs)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    return to_png(plt, fig)


def failure_figure(runs) -> bytes:
    """Unclosed (any cause), truncated and unparsable rates against training size per group."""
    plt, fig, axes = new_figure(1, 3, (12, 3.4))
    for ax, key in zip(axes, ("unclosed_rate", "truncated_rate", "unparsable_rate")):
        for group, rs in _by_group(runs).items():
            ax.plot([r.size for r in rs], [r.metrics[key] for r in rs], marker="o", label=group)
        _base_line(ax, runs, key)
        ax.set(ylabel="rate", title=RATE_BY_KEY[key].label, ylim=(0, 1))
        _size_axis(ax, runs)
    axes[0].legend(fontsize=8)
    return to_png(plt, fig)


def budget_figure(runs) -> bytes | None:
    """Epoch-based orig against the budget-matched arms (equal steps, equal tokens), side by side.

    A budget arm gives every smaller size the budget of the largest size's one epoch, so at the
    largest size it is orig itself: that point is drawn on every line."""
    groups = _by_group(runs)
    if "orig" not in groups or not any(g in groups for g in BUDGET_GROUPS):
        return None
    largest = groups["orig"][-1]
    lines = {"orig (epochs)": groups["orig"]}
    lines |= {f"{g} (largest size's budget)": groups[g] + [largest] for g in BUDGET_GROUPS if g in groups}
    keys = ("strict_accuracy", "unclosed_rate", "format_fail_rate")
    plt, fig, axes = new_figure(1, 3, (12, 3.4))
    for ax, key in zip(axes, keys):
        for label, rs in lines.items():
            ax.plot([r.size for r in rs], [r.metrics[key] for r in rs], marker="o", label=label)
        title = "strict accuracy" if key == "strict_accuracy" else RATE_BY_KEY[key].label
        ax.set(ylabel="rate", title=title, ylim=(0, 1) if key != "strict_accuracy" else None)
        _size_axis(ax, [r for rs in lines.values() for r in rs])
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    return to_png(plt, fig)


def length_figure(runs) -> bytes:
    """Histograms of generated tokens, one step line per run."""
    plt, fig, ax = new_figure(1, 1, (8, 3.4))
    top = max((r.metrics.get("gen_tokens_max") or 1) for r in runs)
    bins = list(range(0, int(top) + 17, 16))
    for r in runs:
        ax.hist([x["n_tokens"] for x in r.records], bins=bins, histtype="step", label=r.spec.name)
    ax.set(xlabel="generated tokens", ylabel="questions", title="generated length")
    ax.legend(fontsize=6, ncol=2)
    return to_png(plt, fig)


def curves_figure(runs) -> bytes:
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


def lr_figure(runs) -> bytes | None:
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


def figures(runs, reference: bool = False) -> dict[str, bytes]:
    out = {
        "accuracy.png": accuracy_figure(runs, reference),
        "failures.png": failure_figure(runs),
        "lengths.png": length_figure(runs),
    }
    budget = budget_figure(runs)
    if budget is not None:
        out["budget.png"] = budget
    if any(r.log for r in runs):
        out["curves.png"] = curves_figure(runs)
    lr = lr_figure(runs)
    if lr is not None:
        out["lr_sweep.png"] = lr
    return out


def _rates_cell(c) -> str:
    """Each rate on its own, baseline → candidate (criterion 2 tests their union)."""
    keys = ("unclosed_rate", "truncated_rate", "unclosed_eos_rate", "unparsable_rate")
    return "; ".join(f"{RATE_BY_KEY[k].label} {c.rates[k][0]:.3f}→{c.rates[k][1]:.3f}" for k in keys if k in c.rates)


def _fmt_p(p) -> str:
    return "-" if p is None else f"{p:.3g}"


def _check_cells(c, rates: bool = False) -> list[str]:
    ci = "-" if c.ci is None else f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]"
    cells = [c.label, c.verdict, str(c.n), c.run_a or "(missing)", f"{c.value_a:.3f}", c.run_b or "(missing)"]
    cells += [f"{c.value_b:.3f}", str(c.discordant), _fmt_p(c.p), _fmt_p(c.p_holm), ci]
    return cells + ([_rates_cell(c)] if rates else [])


CHECK_HEAD = [
    "check",
    "verdict",
    "n",
    "baseline run",
    "value",
    "candidate run",
    "value",
    "discordant",
    "McNemar p",
    "Holm p",
    "candidate − baseline 95% CI",
]
RATES_HEAD = "each rate, baseline → candidate"


def _sections(doc: dict):
    """(heading, verdict or None, rule, head, rows) for the criteria and the extra comparisons."""
    for c in doc["criteria"] + doc["extra"]:
        rates = any(k.rates and "parsable" in k.label for k in c["checks"])
        head = CHECK_HEAD + ([RATES_HEAD] if rates else [])
        yield c["criterion"], c["verdict"], c["rule"], head, [_check_cells(k, rates) for k in c["checks"]]


def md_table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    parts = [f"# {doc['title']}", ""]
    parts += [f"> **warning:** {w}" for w in doc["top_warnings"]] + ([""] if doc["top_warnings"] else [])
    parts += ["## Runs", ""]
    head = list(doc["rows"][0])
    parts += [md_table(head, [list(r.values()) for r in doc["rows"]]), "", "## Success criteria", ""]
    for title, verdict, rule, chead, rows in _sections(doc):
        parts += [f"### {title}" + ("" if verdict is None else f" — **{verdict}**"), "", f"Rule: {rule}.", ""]
        parts += [md_table(chead, rows), ""]
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
    body = [f"<h1>{e(doc['title'])}</h1>"] + [f"<p class='warn'>warning: {e(w)}</p>" for w in doc["top_warnings"]]
    body += [
        "<h2>Runs</h2>",
        html_table(list(doc["rows"][0]), [list(r.values()) for r in doc["rows"]]),
        "<h2>Success criteria</h2>",
    ]
    for title, verdict, rule, chead, rows in _sections(doc):
        cls = "met" if verdict == "met" else "not"
        tail = "" if verdict is None else f" — <span class='{cls}'>{e(verdict)}</span>"
        body += [f"<h3>{e(title)}{tail}</h3>", f"<p>Rule: {e(rule)}.</p>", html_table(chead, rows)]
    body += ["<h2>Figures</h2>"] + [f"<img alt='{e(n)}' src='{images[n]}'>" for n in doc["figures"]]
    body += ["<h2>Environments</h2>"] + [f"<p class='warn'>warning: {e(w)}</p>" for w in doc["warnings"]]
    if doc["env_rows"]:
        body.append(html_table(list(doc["env_rows"][0]), [list(r.values()) for r in doc["env_rows"]]))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(doc['title'])}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
