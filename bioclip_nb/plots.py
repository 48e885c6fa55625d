"""Figures. Each function takes ``ax=None`` (a new figure when None), returns the Axes, and
never calls ``plt.show()``.
"""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .model import Prediction


def _axes(ax, figsize=(6, 3)):
    """The given Axes, or a new pyplot figure's (so notebooks show it inline)."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def new_axes(figsize=(6, 3), ncols: int = 1):
    """Axes on a figure outside pyplot (safe in threads; for the dashboard)."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.subplots(1, ncols) if ncols > 1 else fig.subplots()


def prediction_bars(predictions: Sequence[Prediction], ax=None, rank_label: str | None = None):
    """Horizontal bars of the top predictions' probabilities (best on top)."""
    ax = _axes(ax, (6, 0.45 * max(3, len(predictions)) + 0.6))
    names = [p.name if p.name else f"(no {p.rank.value} name)" for p in predictions][::-1]
    scores = [p.score for p in predictions][::-1]
    bars = ax.barh(range(len(scores)), scores, color="#3b7a57")
    ax.set_yticks(range(len(scores)), names)
    for label, p in zip(ax.get_yticklabels(), predictions[::-1]):
        if p.rank.value == "species":
            label.set_fontstyle("italic")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.bar_label(bars, labels=[f"{s:.0%}" for s in scores], padding=3, fontsize=9)
    ax.set_title(f"BioCLIP 2 prediction{': ' + rank_label if rank_label else ''}", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def to_png(ax, dpi: int = 100) -> bytes:
    """PNG bytes of the figure holding ``ax`` (a pyplot figure is closed afterwards)."""
    fig = ax if isinstance(ax, Figure) else np.atleast_1d(ax)[0].figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def empty(message: str, ax=None):
    """An empty axes carrying a message (for 'nothing to show yet')."""
    ax = _axes(ax, (6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#555", wrap=True)
    return ax

