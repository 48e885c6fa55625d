"""The Batch tab: several photos uploaded at once, one row each, each opening its own gallery.

The encoding, searching and the table are ``bioclip_nb.batch`` (shared with ``bioclip-nb
search --format summary`` and tutorial 04); here they are shown and wired.
"""

from __future__ import annotations

import ipywidgets as w

from .. import batch, darwincore
from ..encoders.within import Within
from ..errors import UploadError
from ..provenance import for_search
from . import html
from .callbacks import guarded
from .state import Level, Query, Status, display_bytes
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


class BatchActions:
    """Mixed into ``Dashboard``: uploads of several photos, and opening one of them."""

    BATCH_TAB = 6

    def _run_batch(self, files) -> None:
        s = self.session
        self._set_busy(True, f"Encoding and searching {len(files)} photos...")
        self._read_settings()
        s.cancel_fetches()
        items = [(f["name"], bytes(f["content"])) for f in files]
        photos = batch.encode_photos(s.encoder, items, cache=s.cache)
        st = s.settings
        batch.search_photos(s.atlas, s.encoder, photos, top_n=int(st.top_n), nprobe=int(st.nprobe), scope=st.scope,
                            taxon=dict(st.taxon) or None, fold=st.fold, within=s.prediction_within())
        self.batch_photos = photos
        self.batch_images = {i: display_bytes_of(data) for i, (_n, data) in enumerate(items)
                             if photos[i].encoding is not None}
        self.batch.show(photos)
        self.controls.show_query(None)           # no single query now: each row opens its own
        self.detail.show(s, None, None)
        self.tabs.selected_index = self.BATCH_TAB
        bad = sum(p.error is not None for p in photos)
        s.status = Status(f"{len(photos)} photos: one row each in the Batch tab; open one to see its results."
                          + (f" {bad} could not be used (the table says why)." if bad else ""),
                          Level.WARNING if bad else Level.INFO)

    @guarded
    def open_photo(self, i: int) -> None:
        """Show one photo of the batch in the gallery (no re-encoding: its encoding is kept)."""
        photo = self.batch_photos[i]
        if photo.encoding is None:
            raise ValueError(f"{photo.name} could not be used: {photo.error}")
        s = self.session
        s._new_query(Query("image", photo.name, self.batch_images.get(i), sha256=photo.sha256), photo.encoding)
        self._after_query()
        self._search()
        self.tabs.selected_index = 0

    @guarded
    def prepare_batch_csv(self, darwin_core: bool = False) -> None:
        photos = getattr(self, "batch_photos", None)
        if not photos:
            raise ValueError("No batch yet: upload several photos at once.")
        s, st = self.session, self.session.settings
        within: Within | None = s.prediction_within()
        base = for_search(s.atlas, st.nprobe, st.scope, st.taxon, folded=st.fold)
        if darwin_core:
            sheet = darwincore.photos_table(photos, s.atlas.model, base.searched_at).to_csv(index=False)
            self.batch.links.value = html.download_link(sheet.encode("utf-8"), "bioclip-nb-identifications-dwc.csv",
                                                        "text/csv", "Download the Darwin Core sheet")
            return
        data = batch.summary_csv(photos, base).encode("utf-8")
        self.batch.links.value = html.download_link(data, "bioclip-nb-batch.csv", "text/csv",
                                                    "Download the table (CSV)" + (f", predictions within {within.label}"
                                                                                  if within else ""))


def display_bytes_of(data: bytes) -> bytes | None:
    from ..images.uploads import load_upload
    try:
        return display_bytes(load_upload(data))
    except UploadError:  # the row already says why the photo could not be used
        return None
