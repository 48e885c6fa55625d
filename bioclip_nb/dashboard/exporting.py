"""The Export tab: CSV, JSON, Darwin Core and a ZIP of images, of all results or the marked
ones, each carrying the search's provenance (``provenance``)."""

from __future__ import annotations

import json

from ..outputs import darwincore, results
from ..outputs.provenance import describe
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
        Export.__init__(self, self.prepare_csv, self.prepare_zip, on_json=self.prepare_json, on_dwc=self.prepare_dwc)

    def on_results(self) -> None:
        self.links.value = ""          # links to the last results' files would mislead

    def _to_export(self):
        return self.session.export_hits(marked_only=bool(self.marked_only.value))

    def _which(self) -> str:
        return "-marked" if self.marked_only.value else ""

    @guarded
    def prepare_csv(self) -> None:
        data = results.to_csv(self._to_export()).encode("utf-8")
        self.links.value = html.download_link(data, f"bioclip-nb-results{self._which()}.csv", "text/csv",
                                                     "Download CSV")

    @guarded
    def prepare_json(self) -> None:
        hits = self._to_export()
        body = {"provenance": describe(self.session.provenance()), "hits": results.hits_to_records(hits)}
        data = json.dumps(body, ensure_ascii=False, indent=1).encode("utf-8")
        self.links.value = html.download_link(data, f"bioclip-nb-results{self._which()}.json",
                                                     "application/json", "Download JSON")

    @guarded
    def prepare_dwc(self) -> None:
        data = darwincore.hits_table(self._to_export()).to_csv(index=False).encode("utf-8")
        self.links.value = html.download_link(data, f"bioclip-nb-darwin-core{self._which()}.csv", "text/csv",
                                                     "Download Darwin Core CSV")

    @guarded
    def prepare_zip(self) -> None:
        session = self.session
        hits = self._to_export()
        prov = describe(session.provenance())
        name = f"bioclip-nb-results{self._which()}.zip"
        self.links.value = ""
        self.start(len(hits))
        session.status = Status("Preparing the ZIP (images + CSV)...", Level.WORKING)

        def work(job: Job) -> None:
            self.app.jobs.wait(name="gallery")      # the images the gallery is still fetching
            data = results.to_zip(hits, dict(session.images),
                                  progress=lambda done: job.apply(lambda: self.step(done)),
                                  cancel=job.cancel, provenance=prov)
            if data is None:
                return
            link = html.download_link(data, name, "application/zip", "Download ZIP (images + CSV)")
            job.apply(lambda: self._zip_ready(link))

        jobs = self.app.jobs
        jobs.start("zip", work, self.app.background_error, generation=jobs.generation)

    def _zip_ready(self, link: str) -> None:
        self.done()
        self.links.value = link
        self.session.status = Status("ZIP ready: click the link to download it.")
        self.render_status()
