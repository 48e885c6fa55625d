"""The "Where and when" tab's actions: look the hits' GBIF records up in the background once
their images are in, draw them, and narrow the gallery and the exports by month, country,
licence or the map's view."""

from __future__ import annotations

from .callbacks import guarded
from .jobs import Job
from .state import Level, Status


class PlacesActions:
    """Mixed into ``Dashboard``: needs ``session``, ``gallery``, ``where``, ``jobs``."""

    WHERE_TAB = 7

    def _start_occurrences(self) -> None:
        session = self.session
        hits = session.hits
        if session.places.source is None or hits is None or not len(hits):
            return
        self.where.show(hits, session.places, None)          # "looking up..."

        def work(job: Job) -> None:
            session.places.lookup(hits, cancel=job.cancel)
            job.apply(self._places_ready)

        self.jobs.start("occurrences", work, self._background_error, generation=self.jobs.generation)

    def _places_ready(self) -> None:
        if self.session.places.filter.active:
            self._show_filtered()
        self._render_places()
        if self.session.selected is not None:
            self._show_selected_quietly()

    def _render_places(self) -> None:
        s = self.session
        self.where.show(s.hits, s.places, s.places.shown(s.hits) if s.hits is not None else None)

    def _show_filtered(self) -> None:
        s = self.session
        shown = s.places.shown(s.hits)
        self.gallery.show(shown, s.marks)
        for hit_id in shown["id"].astype(int):
            result = s.images.get(int(hit_id))
            if result is not None:
                self.gallery.fill(result)
        n, total = len(shown), len(s.hits)
        s.status = (Status(f"Showing {n} of {total} results: {s.places.filter.describe()}.", Level.INFO)
                    if s.places.filter.active else Status(f"All {total} results shown."))
        self._render_status()

    @guarded
    def filter_places(self) -> None:
        """Apply the tab's filters to the current results (the gallery and the exports follow)."""
        s = self.session
        wanted = self.where.read_filter()
        if wanted == s.places.filter:
            return
        s.places.filter = wanted
        if s.hits is None:
            return
        if s.places.table is None and wanted.active:
            s.status = Status("The filters apply once the hits' GBIF records are in (a moment).", Level.WORKING)
            self._render_status()
            return
        self._show_filtered()
        self._render_places()
