"""Matplotlib figures as reproducible PNG bytes (Agg, no timestamps): the training curves a stage writes, and
the figure and PNG helpers the report's figures are drawn with (app/study/plots.py).
"""

from __future__ import annotations

import io


def new_figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (8, 3.2)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=size)
    return plt, fig, axes


def to_png(plt, fig, layout: bool = True) -> bytes:
    """The figure as PNG bytes; `layout=False` keeps a layout the caller already set (e.g. room for a legend)."""
    buf = io.BytesIO()
    if layout:
        fig.tight_layout()
    # No software or creation-time metadata: the PNG bytes stay reproducible for the manifest.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None, "Creation Time": None})
    plt.close(fig)
    return buf.getvalue()


def training_curves(log: list[dict], title: str = "") -> bytes:
    """Loss and LR against optimizer step."""
    plt, fig, (ax_loss, ax_lr) = new_figure(1, 2)
    steps = [r["step"] for r in log]
    ax_loss.plot(steps, [r["loss"] for r in log], lw=1)
    ax_loss.set(xlabel="optimizer step", ylabel="loss / supervised token", title=title or "loss")
    ax_lr.plot(steps, [r["lr"] for r in log], lw=1, color="tab:orange")
    ax_lr.set(xlabel="optimizer step", ylabel="learning rate", title="LR schedule")
    return to_png(plt, fig)
