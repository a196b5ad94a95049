"""The report's matplotlib figures, each with a caption saying what to read from it.

Drawing rules (issue 25): every rate on 0–1 with 95% Wilson intervals, groups side by side (a small
horizontal offset and their own marker) so no line hides another, legends outside the data, and
quantities that cannot be compared (losses under different masks) on separate axes.
"""

from __future__ import annotations

import math

from app.eval.grading import RATE_BY_KEY
from app.eval.metrics import wilson_interval
from app.figures import new_figure, to_png
from app.study.headline import ORIGINAL_REPORT

GROUP_ORDER = ("base", "orig", "A", "B", "C", "lr", "P", "steps", "tokens", "decode", "other")
BUDGET_GROUPS = ("steps", "tokens")
FORMAT_GROUPS = ("orig", "A", "B", "C")  # the arms the three criteria compare
# One colour and marker per group, the same in every figure.
STYLE = {
    "base": ("#7f7f7f", "_"),
    "orig": ("#222222", "s"),
    "A": ("#1f77b4", "o"),
    "B": ("#ff7f0e", "^"),
    "C": ("#2ca02c", "v"),
    "lr": ("#9467bd", "*"),
    "P": ("#d62728", "D"),
    "steps": ("#8c564b", "P"),
    "tokens": ("#e377c2", "X"),
    "decode": ("#bcbd22", "d"),
    "other": ("#17becf", "h"),
}
MASK_ORDER = ("response", "full", "answer_only")
RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")  # runs inside one panel

CAPTIONS = {
    "format.png": "The format story. Each point is one run's share of the evaluated questions; bars are 95% "
    "Wilson intervals, the dashed line is the untrained model. Read: does an arm leave fewer answers without "
    "</answer> (left) or with a closed answer that holds no single number (right) than orig at the same size? "
    "Criterion 2 tests their union, 'no parsable answer', with paired tests.",
    "accuracy.png": "Strict accuracy (left, 95% Wilson intervals) and the diagnostic last-number accuracy (right) "
    "against training size, one marker per group, groups side by side at each size. Read: whether any arm "
    "answers more questions than another at the same size, and whether accuracy falls as the data grows.",
    "failures.png": "Each failure rate against training size (95% Wilson intervals). Read: which arms leave "
    "answers unclosed, which of those hit the token cap (truncated), and which close an answer without a "
    "single number (unparsable).",
    "budget.png": "Epoch-based orig against the same recipe given the largest size's budget (equal optimizer "
    "steps or equal trained tokens) at every size, on 0–1 with 95% Wilson intervals. Read: if the lines stay "
    "together, the size of the training set is not what moves the format or the accuracy, the budget is.",
    "lengths.png": "Generated tokens per question, one panel per group, one line per run; the dashed line is "
    "the token cap. Read: a pile at the cap means outputs that ran out of tokens (truncated); a pile near 0 "
    "means the model jumps straight to an answer.",
    "curves.png": "Training loss per supervised token, whole-response masks (left) and answer-only masks "
    "(middle) on separate axes because they average over different tokens; right: each distinct LR recipe "
    "once, against the fraction of training done. Read: whether training converged, not which arm is better.",
    "lr_sweep.png": "The answer-only cosine recipe at one size, against its peak learning rate (95% Wilson "
    "intervals; the three measures are offset sideways so none hides another). Read: how format and accuracy "
    "move with the learning rate.",
}


def _by_group(runs, skip=("lr", "decode"), only=None) -> dict[str, list]:
    """Trained runs by group, ordered by size (the LR sweep and decode arms have their own tables)."""
    groups: dict[str, list] = {}
    for r in sorted(runs, key=lambda r: r.size):
        if r.size and r.group not in skip and (only is None or r.group in only):
            groups.setdefault(r.group, []).append(r)
    return {g: groups[g] for g in GROUP_ORDER if g in groups}


def _size_axis(ax, runs, extra: list[int] | tuple = ()) -> None:
    """Log axis of training examples, ticked at the real sizes (128 … 7473), not at powers of ten."""
    sizes = sorted({r.size for r in runs if r.size} | set(extra))
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training examples")
    if sizes:
        ax.set_xlim(sizes[0] / 1.35, sizes[-1] * 1.35)


def _dodge(index: int, count: int, step: float = 0.045) -> float:
    """Multiplicative x offset for the index-th of `count` series on a log axis: side by side, centred."""
    return math.exp((index - (count - 1) / 2) * step)


def _rate(run, key: str) -> tuple[float, float, float]:
    """(share, lower, upper) with its 95% Wilson interval, counted from the run's per-item records:
    `strict` / `diagnostic` correctness or one rate of app/eval/grading.RATES."""
    if key in ("strict", "diagnostic"):
        k = sum(bool(x[f"{key}_correct"]) for x in run.records)
    else:
        k = sum(x["status"] in RATE_BY_KEY[key].statuses for x in run.records)
    n = len(run.records)
    lo, hi = wilson_interval(k, n)
    return (k / n if n else 0.0), lo, hi


def _points(ax, xs, values, label, colour, marker, ls="-") -> None:
    """Points with their 95% intervals as error bars; `values` are (rate, lower, upper)."""
    ys = [v[0] for v in values]
    err = [[max(0.0, v[0] - v[1]) for v in values], [max(0.0, v[2] - v[0]) for v in values]]
    ax.errorbar(xs, ys, yerr=err, marker=marker, ms=6, capsize=3, lw=1.2, ls=ls, color=colour, label=label)


def _groups_panel(ax, groups: dict[str, list], key: str) -> None:
    """One rate against size, every group dodged sideways with its own colour and marker."""
    for i, (group, rs) in enumerate(groups.items()):
        colour, marker = STYLE.get(group, STYLE["other"])
        xs = [r.size * _dodge(i, len(groups)) for r in rs]
        _points(ax, xs, [_rate(r, key) for r in rs], group, colour, marker)


def _base_line(ax, runs, key: str) -> None:
    """The untrained model as a dashed horizontal line (it has no training size to plot at)."""
    for r in runs:
        if r.group == "base":
            ax.axhline(_rate(r, key)[0], ls="--", color="grey", lw=1, label="base model", zorder=0)


def _legend_below(fig, ax, ncol: int = 8) -> None:
    """One legend for the figure, under the panels, never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    if not seen:
        return
    fig.legend(seen.values(), seen.keys(), loc="lower center", ncol=min(ncol, len(seen)), fontsize=8, frameon=False)


def _finish(plt, fig, bottom: float) -> bytes:
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return to_png(plt, fig, layout=False)


def _rates_figure(runs, groups: dict[str, list], panels, size) -> bytes:
    """Panels of rates against training size (key, title), one shared legend below."""
    plt, fig, axes = new_figure(1, len(panels), size)
    for ax, (key, title) in zip(axes, panels):
        _groups_panel(ax, groups, key)
        _base_line(ax, runs, key)
        ax.set(ylabel="share of questions", title=title, ylim=(0, 1))
        _size_axis(ax, [r for rs in groups.values() for r in rs])
    _legend_below(fig, axes[0])
    return _finish(plt, fig, 0.12)


def format_figure(runs) -> bytes:
    """The headline figure: unclosed and unparsable rates of the criteria's arms by size, 95% intervals."""
    groups = _by_group(runs, only=FORMAT_GROUPS) or _by_group(runs)
    panels = (("unclosed_rate", "unclosed: no </answer>"), ("unparsable_rate", "unparsable: no single number"))
    return _rates_figure(runs, groups, panels, (6.4, 3.8))


def accuracy_figure(runs, reference: bool = False) -> bytes:
    """Strict and diagnostic accuracy against training size per group, with Wilson intervals."""
    groups = _by_group(runs)
    plt, fig, axes = new_figure(1, 2, (11, 3.8))
    titles = (("strict", "strict accuracy"), ("diagnostic", "diagnostic accuracy (last number)"))
    for ax, (key, title) in zip(axes, titles):
        _groups_panel(ax, groups, key)
        _base_line(ax, runs, key)
        ax.set(ylabel="accuracy", title=title, ylim=(0, 1))
        _size_axis(ax, [r for rs in groups.values() for r in rs], sorted(ORIGINAL_REPORT) if reference else [])
    if reference:
        xs = sorted(ORIGINAL_REPORT)
        axes[0].plot(xs, [ORIGINAL_REPORT[x] for x in xs], ls=":", color="black", marker="x", label="original report")
    _legend_below(fig, axes[0])
    return _finish(plt, fig, 0.12)


def failure_figure(runs) -> bytes:
    """Unclosed (any cause), truncated and unparsable rates against training size per group."""
    panels = [(k, RATE_BY_KEY[k].label) for k in ("unclosed_rate", "truncated_rate", "unparsable_rate")]
    return _rates_figure(runs, _by_group(runs), panels, (13, 3.8))


def budget_figure(runs) -> bytes | None:
    """Epoch-based orig against the budget-matched arms (equal steps, equal tokens), side by side.

    A budget arm gives every smaller size the budget of the largest size's one epoch, so at the
    largest size it is orig itself: that point is drawn on every line."""
    groups = _by_group(runs)
    if "orig" not in groups or not any(g in groups for g in BUDGET_GROUPS):
        return None
    largest = groups["orig"][-1]
    lines = {"orig": groups["orig"]} | {g: groups[g] + [largest] for g in BUDGET_GROUPS if g in groups}
    panels = (("strict", "strict accuracy"), ("unclosed_rate", "unclosed"), ("format_fail_rate", "no parsable answer"))
    plt, fig, axes = new_figure(1, 3, (12, 3.7))
    for ax, (key, title) in zip(axes, panels):
        for i, (group, rs) in enumerate(lines.items()):
            colour, marker = STYLE.get(group, STYLE["other"])
            label = "orig (epochs)" if group == "orig" else f"{group} (largest size's budget)"
            xs = [r.size * _dodge(i, len(lines)) for r in rs]
            _points(ax, xs, [_rate(r, key) for r in rs], label, colour, marker)
        ax.set(ylabel="share of questions", title=title, ylim=(0, 1))
        _size_axis(ax, [r for rs in lines.values() for r in rs])
    _legend_below(fig, axes[0])
    return _finish(plt, fig, 0.12)


def length_figure(runs) -> bytes:
    """Histograms of generated tokens as small multiples: one panel per group, one step line per run."""
    panels: dict[str, list] = {}
    for r in sorted(runs, key=lambda r: (r.size, r.spec.name)):
        panels.setdefault(r.group, []).append(r)
    order = [g for g in GROUP_ORDER if g in panels] + sorted(g for g in panels if g not in GROUP_ORDER)
    cols = min(4, len(order))
    rows = math.ceil(len(order) / cols)
    plt, fig, axes = new_figure(rows, cols, (3.2 * cols, 2.3 * rows))
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    top = max((r.metrics.get("gen_tokens_max") or 1) for r in runs)
    bins = list(range(0, int(top) + 17, 16))
    peak = 1
    for ax, group in zip(flat, order):
        for j, r in enumerate(panels[group]):
            counts, _, _ = ax.hist([x["n_tokens"] for x in r.records], bins=bins, histtype="step", lw=1.4)
            peak = max(peak, max(counts))
            ax.patches[-1].set(color=RUN_COLOURS[j % len(RUN_COLOURS)], label=r.spec.name)
            cap = r.metrics.get("max_new_tokens")
            if isinstance(cap, (int, float)):
                ax.axvline(cap, ls="--", color="grey", lw=0.8, zorder=0)
        ax.set_title(group, fontsize=10)
        ax.legend(fontsize=6.5, loc="upper center", frameon=False, ncol=2)
    for ax in flat:
        ax.set_ylim(0, peak * 1.7)  # the top 40% is left empty for the legend: it never covers a bar
        ax.set_xlim(0, bins[-1])
    for ax in flat[len(order) :]:
        ax.set_visible(False)
    for ax in flat[(rows - 1) * cols :]:
        ax.set_xlabel("generated tokens")
    for ax in flat[::cols]:
        ax.set_ylabel("questions")
    return to_png(plt, fig)


def _recipe(run) -> tuple:
    t = run.spec.train
    return (t.schedule, t.lr, t.warmup_ratio if t.schedule == "cosine" else 0.0, t.min_lr_ratio)


def _headroom_legend(ax, top: float, share: float = 0.4, ncol: int = 1) -> None:
    """Leave the top `share` of the panel empty and put the legend there: it never covers the data."""
    ax.set_ylim(0, top / (1 - share))
    ax.legend(fontsize=6.5, loc="upper right", frameon=False, ncol=ncol)


def _loss_panel(ax, runs, top: float) -> None:
    """One group's runs: loss against optimizer step, a marker per run so equal values stay visible."""
    for j, r in enumerate(sorted(runs, key=lambda r: r.size)):
        steps = [x["step"] for x in r.log]
        colour, marker = RUN_COLOURS[j % len(RUN_COLOURS)], "os^Dv*"[j % 6]
        ax.plot(steps, [x["loss"] for x in r.log], lw=1.2, ms=4, marker=marker, color=colour, label=r.spec.name)
    _headroom_legend(ax, top)


def _lr_panel(ax, trained) -> None:
    """Each distinct LR recipe once, against the fraction of training done."""
    recipes: dict[tuple, list] = {}
    for r in trained:
        recipes.setdefault(_recipe(r), []).append(r)
    top = max(x["lr"] for r in trained for x in r.log)
    scale = 10 ** math.floor(math.log10(top))
    for i, (recipe, rs) in enumerate(sorted(recipes.items(), key=lambda kv: (-kv[0][1], kv[0]))):
        log = max(rs, key=lambda r: len(r.log)).log
        last = max(x["step"] for x in log) or 1
        label = f"{recipe[0]} {recipe[1]:g} ({', '.join(sorted(dict.fromkeys(r.group for r in rs)))})"
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        ys = [x["lr"] / scale for x in log]
        ax.plot([x["step"] / last for x in log], ys, lw=1.2, ms=3, marker=".", color=colour, label=label)
    ax.set_title("LR schedule, one line per recipe", fontsize=9)
    ax.set_xlabel("fraction of training", fontsize=8)
    ax.set_ylabel(f"learning rate (× {scale:g})", fontsize=8)
    _headroom_legend(ax, top / scale, 0.5)


def curves_figure(runs) -> bytes:
    """Training loss as small multiples, one row per loss mask (their losses average different tokens, so
    each row has its own axis) and one panel per group; the last panel shows each LR recipe once."""
    trained = [r for r in runs if r.log]
    rows = {m: _by_group([r for r in trained if r.spec.train.loss_mask == m], skip=()) for m in MASK_ORDER}
    rows = {m: g for m, g in rows.items() if g}
    cols = max(max(len(g) for g in rows.values()), len(list(rows.values())[-1]) + 1)  # room for the LR panel
    plt, fig, axes = new_figure(len(rows), cols, (2.9 * cols, 2.5 * len(rows)))
    grid = axes.reshape(len(rows), cols) if hasattr(axes, "reshape") else [[axes]]
    for row, (mask, groups) in zip(grid, rows.items()):
        top = max(x["loss"] for rs in groups.values() for r in rs for x in r.log)
        for ax, (group, rs) in zip(row, groups.items()):
            _loss_panel(ax, rs, top)
            ax.set_title(f"{group}: loss, {mask} mask", fontsize=9)
            ax.set_xlabel("optimizer step", fontsize=8)
            ax.xaxis.get_major_locator().set_params(integer=True)
        row[0].set_ylabel(f"loss / supervised token\n({'answer span' if mask == 'answer_only' else mask})", fontsize=8)
        for ax in row[len(groups) :]:
            ax.set_visible(False)
    lr_ax = grid[-1][-1]
    lr_ax.set_visible(True)
    _lr_panel(lr_ax, trained)
    return to_png(plt, fig)


def lr_figure(runs) -> bytes | None:
    """The LR sweep: answer-only cosine runs (B, C, lr) at the sweep size, against LR."""
    sizes = {r.size for r in runs if r.group == "lr"}
    sweep = sorted((r for r in runs if r.group in ("B", "C", "lr") and r.size in sizes), key=lambda r: r.spec.train.lr)
    if len(sweep) < 2:
        return None
    plt, fig, ax = new_figure(1, 1, (7.5, 3.6))
    lrs = [r.spec.train.lr for r in sweep]
    series = (("strict", "strict accuracy", "o"), ("diagnostic", "diagnostic accuracy", "s"))
    series += (("unclosed_rate", "unclosed", "^"),)
    for i, (key, label, marker) in enumerate(series):
        xs = [x * _dodge(i, len(series), 0.06) for x in lrs]
        _points(ax, xs, [_rate(r, key) for r in sweep], label, RUN_COLOURS[i], marker)
    ax.set(xscale="log", xlabel="peak learning rate", ylabel="share of questions", ylim=(0, 1))
    ax.set_title(f"LR sweep at {sorted(sizes)[0]} examples")
    ax.set_xticks(lrs, [f"{x:g}" for x in lrs])
    ax.minorticks_off()
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return to_png(plt, fig)


def figures(runs, reference: bool = False) -> dict[str, bytes]:
    """Every figure by file name; the headline figure first."""
    out = {
        "format.png": format_figure(runs),
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
