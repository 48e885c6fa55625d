"""The Batch tab: several photos uploaded at once, one row each, each opening its own gallery.

The encoding, searching and the table are ``bioclip_nb.outputs.batch`` (shared with ``bioclip-nb
search --format summary`` and tutorial 04); here they are shown and wired.
"""

from __future__ import annotations

import ipywidgets as w

from ..encoders.within import Within
from ..outputs import batch, formats
from ..outputs.provenance import for_search
from . import html
from .callbacks import guarded
from .tab import App, Tab
from .views import close_all


class BatchView:
    """The table, an Open button per photo, and a download per one-row-per-photo format."""

    ICONS = {"summary": "table", "dwc": "leaf"}

    def __init__(self, on_open, on_prepare):
        self._on_open = on_open
        self.table = w.HTML(html.batch_table(None))
        self.opens = w.VBox([])
        self.buttons: dict[str, w.Button] = {}
        for key in formats.photo_keys():
            fmt = formats.get(key)
            b = w.Button(description=f"Prepare {fmt.label}", icon=self.ICONS.get(key, "download"), disabled=True,
                         tooltip=fmt.help, layout=w.Layout(width="auto"))
            b.on_click(lambda _b, key=key: on_prepare(key))
            self.buttons[key] = b
        self.links = w.HTML()
        self.widget = w.VBox([self.table, w.HTML("<b>Open a photo's results</b>"), self.opens,
                              w.HBox(list(self.buttons.values())), self.links])

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
        for b in self.buttons.values():
            b.disabled = not photos
        self.links.value = ""


class BatchTab(Tab, BatchView):
    """Several photos uploaded at once: their table, and opening one of them."""

    key, title = "batch", "Batch"

    def __init__(self, app: App):
        Tab.__init__(self, app)
        BatchView.__init__(self, self.open_photo, self.prepare)

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
    def prepare(self, key: str) -> None:
        """The batch in the format ``key`` (the summary table, the Darwin Core sheet) as a download link."""
        s = self.session
        if not s.batch:
            raise ValueError("No batch yet: upload several photos at once.")
        within: Within | None = s.prediction_within()
        fmt = formats.get(key)
        data = formats.write_photos(key, formats.PhotoBatch(s.batch, for_search(s.atlas, s.request), s.atlas.model))
        self.links.value = html.download_link(data, f"bioclip-nb-batch-{key}{fmt.suffix}", fmt.mime,
                                              f"Download the {fmt.label}" + (f", predictions within {within.label}"
                                                                            if within else ""))
