"""Figures. Each function takes ``ax=None`` (a new figure when None), returns the Axes, and
never calls ``plt.show()``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..encoders.base import Prediction
from ..layout import BIOCLIP2, display_name


def _axes(ax, figsize=(6, 3)):
    """The given Axes, or a new pyplot figure's (so notebooks show it inline)."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def new_axes(figsize=(6, 3), ncols: int = 1):
    """Axes on a figure outside pyplot (safe in threads; for the dashboard)."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.subplots(1, ncols) if ncols > 1 else fig.subplots()


def prediction_bars(predictions: Sequence[Prediction], ax=None, rank_label: str | None = None,
                    model: str = BIOCLIP2):
    """Horizontal bars of the top predictions' probabilities (best on top), titled by ``model``."""
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
    ax.set_title(f"{display_name(model)} prediction{': ' + rank_label if rank_label else ''}", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def to_png(ax, dpi: int = 100) -> bytes:
    """PNG bytes of the figure holding ``ax`` (a pyplot figure is closed afterwards)."""
    fig = ax if isinstance(ax, Figure) else np.atleast_1d(ax)[0].figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()



PROBED, UNPROBED, HIT = "#3b7a57", "#c9c9c9", "#d9822b"


def cluster_assignment(report, ax=None):
    """The query's nearest IVF cells: list sizes as bars (probed ones coloured), the final hits per
    cell on top, and a call-out when the nearest unprobed cell held a hit that would have shown."""
    ax = _axes(ax, (7, 3.2))
    x = np.arange(len(report.cells))
    colours = [PROBED if p else UNPROBED for p in report.probed]
    ax.bar(x, report.list_sizes, color=colours, label="vectors in cell")
    ax.bar(x, report.hits_per_cell, color=HIT, width=0.45, label="results from cell")
    ax.set_xticks(x, [str(int(c)) for c in report.cells], rotation=90, fontsize=7)
    ax.set_xlabel("IVF cells, nearest centroid first (cell id)")
    ax.set_ylabel("vectors")
    if report.nprobe < len(x):
        ax.axvline(report.nprobe - 0.5, color="#333", linestyle="--", linewidth=1)
        ax.text(report.nprobe - 0.45, ax.get_ylim()[1] * 0.95, f"nprobe = {report.nprobe}", fontsize=8, va="top")
    if report.missed_cell is not None:
        i = int(np.flatnonzero(report.cells == report.missed_cell)[0])
        ax.annotate(f"missed: its best match would be #{report.missed_rank}", xy=(i, report.list_sizes[i]),
                    xytext=(0.55, 0.8), textcoords="axes fraction", fontsize=9, color="#a33",
                    arrowprops={"arrowstyle": "->", "color": "#a33"})
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"Where the search looked: {int(report.probed.sum())} of the nearest cells scanned", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def nprobe_recall(sweep, current: int | None = None, ax=None, label: str = "this query"):
    """recall@k against nprobe (log scale), latency on a second axis, the current nprobe marked."""
    ax = _axes(ax, (7, 3.2))
    k = sweep.attrs.get("k", 10)
    ax.plot(sweep["nprobe"], sweep["recall"], "o-", color=PROBED, label=f"recall@{k}, PQ codes ({label})")
    if "recall_reranked" in sweep:
        ax.plot(sweep["nprobe"], sweep["recall_reranked"], "D-", color="#1f5f8b", label=f"recall@{k}, re-ranked exactly")
    if "reachable" in sweep and not np.allclose(sweep["reachable"], sweep["recall"]):
        ax.plot(sweep["nprobe"], sweep["reachable"], "s--", color="#7aa88f", label="true neighbours in scanned cells")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(sweep["nprobe"]), [str(int(n)) for n in sweep["nprobe"]])
    ax.minorticks_off()
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("search depth (nprobe)")
    ax.set_ylabel("recall")
    twin = ax.twinx()
    twin.plot(sweep["nprobe"], sweep["ms_per_query"], "^:", color="#555", label="ms per query")
    twin.set_ylabel("ms per query")
    if current is not None:
        ax.axvline(current, color=HIT, linewidth=2, label=f"current nprobe {current}")
    lines = ax.get_legend_handles_labels()
    lines2 = twin.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower right")
    ax.set_title(f"Deeper search finds more; truth: {sweep.attrs.get('truth', 'unknown')}", fontsize=11)
    return ax


def atlas_map(amap, probed_cells=None, hit_cells=None, query_xy=None, ax=None, max_legend: int = 10):
    """The atlas's cells in 2-D (UMAP of centroids), sized by size, coloured by dominant taxon,
    with the query, its probed cells and its hits' cells on top."""
    ax = _axes(ax, (6, 5))
    labels = np.array([lab if lab is not None else "(not given)" for lab in amap.labels], dtype=object)
    names = pd_value_counts(labels)[:max_legend]
    cmap = plt.get_cmap("tab10")
    index_of = {name: i for i, name in enumerate(names)}
    colours = [cmap(index_of[lab] % 10) if lab in index_of else (0.73, 0.73, 0.73, 1.0) for lab in labels]
    size = 4 + 60 * np.sqrt(amap.sizes / max(1, amap.sizes.max()))
    ax.scatter(amap.xy[:, 0], amap.xy[:, 1], s=size, c=colours, alpha=0.6, linewidths=0)
    for i, name in enumerate(names):
        ax.scatter([], [], color=cmap(i % 10), label=str(name), s=20)
    if probed_cells is not None and len(probed_cells):
        ax.scatter(amap.xy[probed_cells, 0], amap.xy[probed_cells, 1], s=60, facecolors="none",
                   edgecolors="#222", linewidths=1, label="probed cells")
    if hit_cells is not None and len(hit_cells):
        ax.scatter(amap.xy[hit_cells, 0], amap.xy[hit_cells, 1], s=30, marker="x", color=HIT, label="cells of results")
    if query_xy is not None:
        ax.scatter([query_xy[0]], [query_xy[1]], s=220, marker="*", color="#c00", edgecolors="white", label="query")
    ax.set_xticks([]), ax.set_yticks([])
    ax.legend(fontsize=7, loc="best", markerscale=0.8)
    ax.set_title(f"Atlas map: {len(labels):,} cells coloured by {amap.rank}", fontsize=11)
    return ax


def pd_value_counts(values) -> list:
    """Distinct values, most frequent first."""
    uniq, counts = np.unique(values.astype(str), return_counts=True)
    return list(uniq[np.argsort(-counts, kind="stable")])


MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def month_bars(months: Sequence[int], ax=None):
    """How many records were made in each month of the year (the season), January to December."""
    ax = _axes(ax, (4.2, 2.2))
    counts = np.bincount(np.asarray(months, dtype=int) - 1, minlength=12)[:12]
    ax.bar(range(12), counts, color="#3b7a57")
    ax.set_xticks(range(12), [m[0] for m in MONTH_NAMES])
    ax.set_ylabel("records")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"When they were seen ({int(counts.sum())} dated)", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return ax
