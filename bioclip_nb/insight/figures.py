"""The Plots tab's pictures, drawn from an atlas without widgets: wherever the index is.

A kernel with the atlas open draws them itself (:class:`LocalFigures`); a kernel served by
``bioclip-nb serve`` asks the server, which calls the same functions
(``service.client.RemoteFigures``). Either way the tab gets PNG bytes and a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..request import SearchRequest

if TYPE_CHECKING:
    from ..core.atlas import Atlas


@dataclass(frozen=True)
class SearchFigures:
    """Where one query went (cells) and what deeper search would give (recall), with a note."""

    cells_png: bytes
    recall_png: bytes
    note: str


def search_figures(atlas: Atlas, vector: np.ndarray, request: SearchRequest, hits: pd.DataFrame) -> SearchFigures:
    """The cluster-assignment and nprobe-recall pictures for one query, searched with ``request``, and its hits."""
    from . import explore, plots
    req = request.for_atlas(atlas.nlist)
    nprobe, top_n, scope, taxon = req.nprobe, req.top_n, req.scope, req.taxon
    report = explore.probe_report(atlas, vector, nprobe, hits, top_n=top_n, scope=scope, taxon=taxon or None)
    cells = plots.to_png(plots.cluster_assignment(report, ax=plots.new_axes((7, 3.2))))
    sweep = explore.recall_sweep(atlas, vector, k=top_n, scope=scope, taxon=taxon or None, repeat=1)
    recall = plots.to_png(plots.nprobe_recall(sweep, current=nprobe, ax=plots.new_axes((7, 3.2))))
    missed = (f" The nearest cell it did not scan held a match that would have been result #{report.missed_rank}: "
              "search deeper to find it." if report.missed_cell is not None else "")
    note = f"The query's nearest {len(report.cells)} cells; the first {report.nprobe} were scanned.{missed}"
    return SearchFigures(cells, recall, note)


def map_figure(atlas: Atlas, vector: np.ndarray | None, nprobe: int, hits: pd.DataFrame | None) -> bytes:
    """The atlas map (UMAP of the cells; computed once per atlas) with the query's probed cells
    and the cells its hits came from, as PNG."""
    from . import explore, plots
    amap = explore.atlas_map(atlas)
    probed = hit_cells = query_xy = None
    if vector is not None and atlas.nlist > 1:
        empty = hits.iloc[0:0] if hits is not None else pd.DataFrame({"id": [], "similarity": []})
        report = explore.probe_report(atlas, vector, nprobe, empty)
        probed = report.cells[report.probed]
        if hits is not None and len(hits):
            found = explore.cells_holding(atlas, hits["id"].to_numpy(dtype=np.int64), report.cells)
            hit_cells = np.unique(found[found >= 0])
        query_xy = amap.xy[probed].mean(axis=0) if len(probed) else None
    return plots.to_png(plots.atlas_map(amap, probed, hit_cells, query_xy, ax=plots.new_axes((6, 5))))


class LocalFigures:
    """The figures of an atlas opened in this process."""

    def __init__(self, atlas: Atlas):
        self.atlas = atlas

    def search(self, vector, request: SearchRequest, hits: pd.DataFrame) -> SearchFigures:
        """See :func:`search_figures`."""
        return search_figures(self.atlas, vector, request, hits)

    def map(self, vector, nprobe: int, hits: pd.DataFrame | None) -> bytes:
        """See :func:`map_figure`."""
        return map_figure(self.atlas, vector, nprobe, hits)
