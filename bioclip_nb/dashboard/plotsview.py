"""The Plots tab: how the index found the results (drawn when the tab is opened)."""

from __future__ import annotations

import ipywidgets as w
import numpy as np

from .. import explore, plots
from .state import SearchSession


class PlotsView:
    """Cluster assignment and nprobe recall for the current query; the atlas map on request."""

    def __init__(self, session: SearchSession):
        self.session = session
        self.cells = w.Image(format="png")
        self.recall = w.Image(format="png")
        self.map_button = w.Button(description="Draw the atlas map", tooltip="UMAP of the index cells (computed once per atlas)")
        self.map = w.Image(format="png", layout=w.Layout(display="none"))
        self.note = w.HTML("<p>Search, then open this tab to see how the index found the results.</p>")
        self.widget = w.VBox([self.note, self.cells, self.recall, self.map_button, self.map])
        self.stale = True

    def render(self) -> None:
        """Redraw for the current search (cheap; called when the tab is shown)."""
        s = self.session
        if not self.stale or s.hits is None or s.encoding is None:
            return
        self.stale = False
        if s.atlas.nlist <= 1:
            self.note.value = ("<p>This atlas has an exact (flat) index: every record is compared with the query, "
                               "so there are no cells or search depth to show.</p>")
            self.cells.layout.display = self.recall.layout.display = self.map_button.layout.display = "none"
            return
        st = s.settings
        report = explore.probe_report(s.atlas, s.encoding.embedding, st.nprobe, s.hits, top_n=st.top_n,
                                      scope=st.scope, taxon=st.taxon or None)
        self._report = report
        self.cells.value = plots.to_png(plots.cluster_assignment(report, ax=plots.new_axes((7, 3.2))))
        sweep = explore.recall_sweep(s.atlas, s.encoding.embedding, k=st.top_n, scope=st.scope,
                                     taxon=st.taxon or None, repeat=1)
        self.recall.value = plots.to_png(plots.nprobe_recall(sweep, current=st.nprobe, ax=plots.new_axes((7, 3.2))))
        missed = (f" The nearest cell it did not scan held a match that would have been result #{report.missed_rank}: "
                  "search deeper to find it." if report.missed_cell is not None else "")
        self.note.value = (f"<p>The query's nearest {len(report.cells)} cells; the first {report.nprobe} were scanned."
                           f"{missed}</p>")
        if self.map.layout.display != "none":
            self.draw_map()

    def draw_map(self) -> None:
        """Compute (first time: UMAP, slow) and show the map; the dashboard runs
        :meth:`map_png` in a background job and :meth:`show_map` on the page."""
        self.show_map(self.map_png())

    def show_map(self, png: bytes) -> None:
        self.map.value = png
        self.map.layout.display = None

    def map_png(self) -> bytes:
        """The atlas map with the current query's cells and hits, as PNG (no widget touched)."""
        s = self.session
        amap = explore.atlas_map(s.atlas)
        report = getattr(self, "_report", None)
        probed = report.cells[report.probed] if report is not None else None
        hit_cells = None
        if s.hits is not None and len(s.hits) and report is not None:
            found = explore.cells_holding(s.atlas, s.hits["id"].to_numpy(dtype=np.int64), report.cells)
            hit_cells = np.unique(found[found >= 0])
        query_xy = amap.xy[probed].mean(axis=0) if probed is not None and len(probed) else None
        return plots.to_png(plots.atlas_map(amap, probed, hit_cells, query_xy, ax=plots.new_axes((6, 5))))
