"""The Plots tab: how the index found the results (drawn when the tab is opened)."""

from __future__ import annotations

from html import escape

import ipywidgets as w

from .callbacks import guarded
from .chart import Chart
from .jobs import Job
from .state import Level, Status
from .tab import App, DrawnWhenShown


class PlotsTab(DrawnWhenShown):
    """Cluster assignment and nprobe recall for the current query; the atlas map on request.
    Drawn when the tab is opened (the figures cost more than a search)."""

    key, title = "plots", "Plots"

    def __init__(self, app: App):
        super().__init__(app)
        self.cells, self.recall = Chart(), Chart()
        self.map_button = w.Button(description="Draw the atlas map", tooltip="UMAP of the index cells (computed once per atlas)")
        self.map_button.on_click(lambda _b: self.start_map())
        self.map = Chart()
        self.note = w.HTML("<p>Search, then open this tab to see how the index found the results.</p>")
        self.widget = w.VBox([self.note, self.cells, self.recall, self.map_button, self.map])
        self.stale = True

    @guarded
    def start_map(self) -> None:
        """Draw the atlas map in the background (the first time per atlas computes a UMAP)."""
        self.session.status = Status("Drawing the atlas map (computed once per atlas; the page stays usable)...",
                                     Level.WORKING)

        def work(job: Job) -> None:
            png = self.map_png()
            job.apply(lambda: self._map_ready(png))

        self.app.jobs.start("map", work, self.app.background_error)

    def _map_ready(self, png: bytes) -> None:
        self.show_map(png)
        self.session.status = Status("Atlas map drawn.")
        self.render_status()

    def render(self) -> None:
        """Redraw for the current search (cheap; called when the tab is shown)."""
        s = self.session
        if not self.stale or s.hits is None or s.encoding is None:
            return
        self.stale = False
        if s.atlas.nlist <= 1:
            self.note.value = ("<p>This atlas has an exact (flat) index: every record is compared with the query, "
                               "so there are no cells or search depth to show.</p>")
            self.cells.hide()
            self.recall.hide()
            self.map_button.layout.display = "none"
            return
        figs = s.figures.search(s.encoding.embedding, s.request, s.hits)
        self.cells.show(figs.cells_png, f"Bar chart of the index cells nearest the query and the results found in each. {figs.note}")
        self.recall.show(figs.recall_png, "Line chart of recall at each search depth: the share of the deepest search's "
                         f"results that a shallower search finds. The current depth is {int(s.request.nprobe)}.")
        self.note.value = f"<p>{escape(figs.note)}</p>"
        if self.map.layout.display != "none":
            self.draw_map()

    def draw_map(self) -> None:
        """Compute (first time: UMAP, slow) and show the map; the dashboard runs
        :meth:`map_png` in a background job and :meth:`show_map` on the page."""
        self.show_map(self.map_png())

    def show_map(self, png: bytes) -> None:
        self.map.show(png, "Map of the atlas: each point is an index cell placed by UMAP so that similar cells sit "
                      "together; the query's cells and results are highlighted.")

    def map_png(self) -> bytes:
        """The atlas map with the current query's cells and hits, as PNG (no widget touched)."""
        s = self.session
        vector = s.encoding.embedding if s.encoding is not None else None
        return s.figures.map(vector, int(s.request.nprobe), s.hits)
