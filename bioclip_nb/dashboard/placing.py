"""The "Where and when" tab: look the hits' GBIF records up in the background once their
images are in, draw them, and narrow the gallery and the exports by month, country, licence
or the map's view."""

from __future__ import annotations

from .callbacks import guarded
from .jobs import Job
from .places import PlacesView
from .state import Level, Status
from .tab import App, Tab


class WhereTab(Tab, PlacesView):
    """The hits' places and dates, and the filters on them."""

    key, title = "where", "Where and when"

    def __init__(self, app: App):
        Tab.__init__(self, app)
        PlacesView.__init__(self, self.filter_places, on_select=app.select)

    def start_lookup(self) -> None:
        """Look the hits' GBIF records up in the background (after their images are in)."""
        session = self.session
        hits = session.hits
        if session.places.source is None or hits is None or not len(hits):
            return
        self.show(hits, session.places, None)                 # "looking up..."

        def work(job: Job) -> None:
            session.places.lookup(hits, cancel=job.cancel)
            job.apply(self._places_ready)

        jobs = self.app.jobs
        jobs.start("occurrences", work, self.app.background_error, generation=jobs.generation)

    def _places_ready(self) -> None:
        if self.session.places.filter.active:
            self._show_filtered()
        self._render_places()
        if self.session.selected is not None:
            self.app.show_selected_quietly()

    def _render_places(self) -> None:
        s = self.session
        self.show(s.hits, s.places, s.places.shown(s.hits) if s.hits is not None else None)

    def _show_filtered(self) -> None:
        s = self.session
        shown = s.places.shown(s.hits)
        gallery = self.app.tabs["gallery"]
        gallery.show(shown, s.marks)
        for hit_id in shown["id"].astype(int):
            result = s.images.get(int(hit_id))
            if result is not None:
                gallery.fill(result)
        n, total = len(shown), len(s.hits)
        s.status = (Status(f"Showing {n} of {total} results: {s.places.filter.describe()}.", Level.INFO)
                    if s.places.filter.active else Status(f"All {total} results shown."))
        self.render_status()

    @guarded
    def filter_places(self) -> None:
        """Apply the tab's filters to the current results (the gallery and the exports follow)."""
        s = self.session
        wanted = self.read_filter()
        if wanted == s.places.filter:
            return
        s.places.filter = wanted
        if s.hits is None:
            return
        if s.places.table is None and wanted.active:
            s.status = Status("The filters apply once the hits' GBIF records are in (a moment).", Level.WORKING)
            self.render_status()
            return
        self._show_filtered()
        self._render_places()
