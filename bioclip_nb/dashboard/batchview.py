"""The Batch tab: several photos uploaded at once, one row each, each opening its own gallery.

The encoding, searching and the table are ``bioclip_nb.outputs.batch`` (shared with ``bioclip-nb
search --format summary`` and tutorial 04); here they are shown and wired.
"""

from __future__ import annotations

import ipywidgets as w

from ..encoders.within import Within
from ..outputs import batch, darwincore
from ..outputs.provenance import for_search
from . import html
from .callbacks import guarded
from .tab import App, Tab
from .views import close_all


class BatchView:
    """The table, an Open button per photo, and the table's CSV download."""

    def __init__(self, on_open, on_csv):
        self._on_open = on_open
        self.table = w.HTML(html.batch_table(None))
        self.opens = w.VBox([])
        self.csv = w.Button(description="Prepare table CSV", icon="table", disabled=True)
        self.csv.on_click(lambda _b: on_csv())
        self.dwc = w.Button(description="Darwin Core sheet", icon="leaf", disabled=True,
                            tooltip="one row per photo, BioCLIP 2's prediction as an unverified identification")
        self.dwc.on_click(lambda _b: on_csv(darwin_core=True))
        self.links = w.HTML()
        self.widget = w.VBox([self.table, w.HTML("<b>Open a photo's results</b>"), self.opens, w.HBox([self.csv, self.dwc]), self.links])

    def show(self, photos: list[batch.Photo]) -> None:
        self.table.value = html.batch_table(batch.summary(photos))
        old = list(self.opens.children)
        buttons = []
        for i, photo in enumerate(photos):
            b = w.Button(description=f"{i + 1}: {photo.name}"[:40], layout=w.Layout(width="320px"),
                         disabled=photo.hits is None, tooltip=photo.error or f"show the results for {photo.name}")
            b.on_click(lambda _b, i=i: self._on_open(i))
            buttons.append(b)
        self.opens.children = buttons
        close_all(old)
        self.csv.disabled = self.dwc.disabled = not photos
        self.links.value = ""


class BatchTab(Tab, BatchView):
    """Several photos uploaded at once: their table, and opening one of them."""

    key, title = "batch", "Batch"

    def __init__(self, app: App):
        Tab.__init__(self, app)
        BatchView.__init__(self, self.open_photo, self.prepare_csv)

    def run(self, files) -> None:
        """Encode and search the uploaded files (``FileUpload`` values), one row each."""
        app = self.app
        app.set_busy(True, f"Encoding and searching {len(files)} photos...")
        app.read_settings()
        self.show(self.session.run_batch([(f["name"], bytes(f["content"])) for f in files]))
        app.clear_query_display()          # no single query now: each row opens its own
        app.show_tab(self.key)

    @guarded
    def open_photo(self, i: int) -> None:
        """Show one photo of the batch in the gallery (its encoding is kept: no re-encoding)."""
        self.session.open_batch_photo(i)
        self.app.after_query()
        self.app.run_search()
        self.app.show_tab("gallery")

    @guarded
    def prepare_csv(self, darwin_core: bool = False) -> None:
        """The batch's table, or its Darwin Core identification sheet, as a download link."""
        s = self.session
        photos, st = s.batch, s.settings
        if not photos:
            raise ValueError("No batch yet: upload several photos at once.")
        within: Within | None = s.prediction_within()
        base = for_search(s.atlas, st.nprobe, st.scope, st.taxon, folded=st.fold)
        if darwin_core:
            sheet = darwincore.photos_table(photos, s.atlas.model, base.searched_at).to_csv(index=False)
            self.links.value = html.download_link(sheet.encode("utf-8"), "bioclip-nb-identifications-dwc.csv",
                                                  "text/csv", "Download the Darwin Core sheet")
            return
        data = batch.summary_csv(photos, base).encode("utf-8")
        self.links.value = html.download_link(data, "bioclip-nb-batch.csv", "text/csv",
                                              "Download the table (CSV)" + (f", predictions within {within.label}"
                                                                            if within else ""))
