"""The Export tab: a button per export format (``outputs.formats``) for all results or the
marked ones, each file carrying the search's provenance. The ZIP fetches in the background."""

from __future__ import annotations

from ..outputs import formats
from ..outputs.formats import ExportFormat, Searches
from . import html
from .callbacks import guarded
from .jobs import Job
from .state import Level, Status
from .tab import App, Tab
from .views import Export


class ExportTab(Tab, Export):
    """The export buttons and their actions."""

    key, title = "export", "Export"

    def __init__(self, app: App):
        Tab.__init__(self, app)
        shown = [f for f in formats.FORMATS if f.searches is not None and f.in_dashboard]
        Export.__init__(self, shown, self.prepare)

    def on_results(self) -> None:
        self.links.value = ""          # links to the last results' files would mislead

    def pages(self) -> Searches:
        """The shown page (all hits, or the marked ones) with its provenance."""
        s = self.session
        return Searches.one(s.export_hits(marked_only=bool(self.marked_only.value)), s.provenance())

    @guarded
    def prepare(self, key: str) -> None:
        """Write the results in the format ``key`` and offer the file (the ZIP in the background)."""
        fmt = formats.get(key)
        if fmt.needs_images:
            return self._prepare_zip(fmt)
        data = fmt.searches(self.pages())
        self.links.value = html.download_link(data, fmt.filename(bool(self.marked_only.value)), fmt.mime,
                                              f"Download {fmt.label}")

    def _prepare_zip(self, fmt: ExportFormat) -> None:
        session, pages = self.session, self.pages()
        name = fmt.filename(bool(self.marked_only.value))
        self.links.value = ""
        self.start(len(pages.frames[0]))
        session.status = Status("Preparing the ZIP (images + CSV)...", Level.WORKING)

        def work(job: Job) -> None:
            self.app.jobs.wait(name="gallery")      # the images the gallery is still fetching
            pages.images = dict(session.images)
            pages.progress = lambda done: job.apply(lambda: self.step(done))
            pages.cancel = job.cancel
            data = fmt.searches(pages)
            if data is None:
                return
            link = html.download_link(data, name, fmt.mime, "Download ZIP (images + CSV)")
            job.apply(lambda: self._zip_ready(link))

        jobs = self.app.jobs
        jobs.start("zip", work, self.app.background_error, generation=jobs.generation)

    def _zip_ready(self, link: str) -> None:
        self.done()
        self.links.value = link
        self.session.status = Status("ZIP ready: click the link to download it.")
        self.render_status()
