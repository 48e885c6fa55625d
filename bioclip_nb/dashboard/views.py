"""The dashboard's views: each builds its widgets and renders from a ``SearchSession``.

Views hold no search logic; ``app.Dashboard`` wires their events to the session. Display
labels live here, not in the services.
"""

from __future__ import annotations

import ipywidgets as w
import pandas as pd

from .. import limits
from ..images.fetch import FetchResult
from ..insight import plots
from ..layout import RANKS, Scope, display_name, model_spec
from . import html
from .cards import alt_text
from .chart import Chart
from .state import SearchSession
from .wording import SCOPE_LABELS

NO_TAXON = "(no filter)"
#: The controls column keeps this width on every tab (its sliders' tracks stay wider than 100 px).
CONTROLS_PX = 312
LABEL_WIDTH = "96px"


def scope_options(counts: dict[str, int] | None) -> list[tuple[str, str]]:
    """The scope menu: each scope's label, with its record count once known."""
    return [(f"{SCOPE_LABELS[s]} ({counts.get(s.value, 0):,})" if counts else SCOPE_LABELS[s], s.value) for s in Scope]


def close_all(widgets) -> None:
    """Close widgets and everything inside them, their layout and style included (a closed
    widget is freed in the kernel and in the page)."""
    for widget in widgets:
        close_all(getattr(widget, "children", ()))
        for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
            if isinstance(part, w.Widget):
                part.close()
        widget.close()


class Controls:
    """Left column: the query inputs and the search settings."""

    def __init__(self, session: SearchSession):
        self.upload = w.FileUpload(accept="image/*,.heic,.heif,.avif", multiple=True,
                                   description="Upload photo(s)", layout=w.Layout(width="100%"),
                                   tooltip="one photo, or several for a batch (one row each)")
        self.text = w.Text(layout=w.Layout(width="100%"))
        self.text_button = w.Button(description="Use text", layout=w.Layout(width="100%"))
        self.url = w.Text(placeholder="https://... image URL", layout=w.Layout(width="100%"))
        self.url_button = w.Button(description="Use image URL", layout=w.Layout(width="100%"))
        self.scope = w.Dropdown(style={"description_width": LABEL_WIDTH}, options=scope_options(None),
                                value=session.request.scope, description="Scope", layout=w.Layout(width="100%"))
        self.taxon_rank = w.Dropdown(style={"description_width": LABEL_WIDTH}, options=[NO_TAXON, *RANKS], value=NO_TAXON, description="Taxon rank",
                                     layout=w.Layout(width="100%"))
        self.taxon_name = w.Combobox(style={"description_width": LABEL_WIDTH}, placeholder="pick or type a name", ensure_option=False, disabled=True,
                                     description="Name", continuous_update=False, layout=w.Layout(width="100%"))
        wide = {"description_width": LABEL_WIDTH}
        self.nprobe = w.IntSlider(style=wide, value=1, min=1, max=1, description="Search depth",
                                  continuous_update=False, layout=w.Layout(width="100%"),
                                  tooltip="nprobe: how many index cells are scanned")
        self.top_n = w.IntSlider(style=wide, value=session.request.top_n, min=limits.MIN_TOP_N, max=limits.MAX_GALLERY_TOP_N, description="Top N",
                                 continuous_update=False, layout=w.Layout(width="100%"))
        self.fold = w.Checkbox(value=session.request.fold, description="Fold copies of one image", indent=False,
                               layout=w.Layout(width="100%"))
        self.search = w.Button(description="Search", button_style="primary", layout=w.Layout(width="100%"))
        self.query_view = w.HTML(layout=w.Layout(display="none"))
        self.widget = w.VBox([
            w.HTML("<h2 class='bnb-h2'>Query</h2>"), self.upload, self.query_view, self.text, self.text_button, self.url, self.url_button,
            w.HTML("<h2 class='bnb-h2'>Settings</h2>"), self.scope, self.taxon_rank, self.taxon_name, self.nprobe, self.top_n, self.fold, self.search,
        ], layout=w.Layout(width=f"{CONTROLS_PX}px", flex=f"0 0 {CONTROLS_PX}px", padding="4px"))
        self.for_atlas(session)

    def for_atlas(self, session: SearchSession) -> None:
        """Fit the controls to the session's atlas: text search if its model embeds text, the
        depth slider's range, the scope menu's counts (when known)."""
        atlas = session.atlas
        spec = model_spec(atlas.model)
        texts = spec is None or spec.embeds_text          # an unknown hf-hub model is tried
        self.text.placeholder = ("Search by name or description" if texts else
                                 f"{display_name(atlas.model)} cannot search by text")
        self.text.disabled = self.text_button.disabled = not texts
        self.text_button.tooltip = "" if texts else "this atlas's model embeds photos only"
        self.set_scope_counts(atlas.scope_counts(compute=False))
        top = max(1, min(atlas.nlist, limits.MAX_SLIDER_NPROBE))
        value = max(1, min(session.request.nprobe or 1, top))
        if value > self.nprobe.max:                        # widen first: the value must stay in range
            self.nprobe.max, self.nprobe.value = top, value
        else:
            self.nprobe.value, self.nprobe.max = value, top
        self.nprobe.disabled = atlas.nlist == 1

    def set_scope_counts(self, counts: dict[str, int] | None) -> None:
        """Show each scope's record count (computed in the background when not prepared)."""
        value = self.scope.value
        self.scope.options = scope_options(counts)
        self.scope.value = value

    def has_scope_counts(self) -> bool:
        return self.scope.options[0][0].endswith(")")

    def set_taxon_options(self, names: list[str]) -> None:
        self.taxon_name.options = tuple(names)

    def show_query(self, image: bytes | None, name: str = "") -> None:
        """Show the query's picture (named for a screen reader), or nothing."""
        if image:
            self.query_view.value = html.picture(image, f"the query: {name}" if name else "the query", width=280)
            self.query_view.layout.display = None
        else:
            self.query_view.layout.display = "none"


MARK = ("☆ Mark", "★ Marked")


def mark_button(marked: bool, on_change) -> w.ToggleButton:
    """The mark on a card or in the detail panel; ``on_change(marked)`` when it changes."""
    button = w.ToggleButton(value=marked, description=MARK[marked], layout=w.Layout(width="78px"),
                            tooltip="keep this result: 'marked only' exports just the marked ones")
    button.observe(lambda ch: on_change(bool(ch["new"])), names="value")
    return button


def show_mark(button: w.ToggleButton, marked: bool) -> None:
    """Set a mark button (its callback sets the same value again: harmless)."""
    button.description = MARK[marked]
    button.value = marked


class Prediction:
    """The model's top 5 at a chosen rank, as bars."""

    def __init__(self, on_rank, on_checklist=None, on_clear=None):
        self.rank = w.Dropdown(options=list(RANKS), value="species", description="Rank")
        self.rank.observe(lambda ch: on_rank(), names="value")
        self.image = Chart()
        self.note = w.HTML()
        self.within = w.HTML()
        self.checklist = w.FileUpload(accept=".csv", multiple=False, description="Checklist CSV",
                                      tooltip="restrict the prediction to the names in a CSV whose first column is a "
                                              "rank (e.g. species)")
        self.clear = w.Button(description="Whole Tree of Life", tooltip="forget the checklist")
        if on_checklist is not None:
            self.checklist.observe(lambda ch: on_checklist(ch["new"]), names="value")
        if on_clear is not None:
            self.clear.on_click(lambda _b: on_clear())
        self.widget = w.VBox([w.HBox([self.rank, self.checklist, self.clear]), self.within, self.note, self.image])

    def show(self, session: SearchSession) -> None:
        preds = session.predictions(self.rank.value, 5)
        note = session.restriction_note()
        self.within.value = html.status(note, "warning" if note.startswith("Not") else "info") if note else ""
        self.clear.disabled = session.checklist is None
        if session.encoding is None:
            self.note.value = "<p>No query yet.</p>"
            self.image.hide()
        elif not preds:
            self.note.value = f"<p>No prediction: {html.escape(_no_prediction(session))}.</p>"
            self.image.hide()
        else:
            self.note.value = ""
            png = plots.to_png(plots.prediction_bars(preds, ax=plots.new_axes((6, 2.8)), rank_label=self.rank.value,
                                                                         model=session.atlas.model))
            self.image.show(png, f"Bar chart of the model's top {len(preds)} at rank {self.rank.value}: "
                            + "; ".join(f"{p.name or 'unnamed'} {p.score:.2f}" for p in preds))


def _no_prediction(session: SearchSession) -> str:
    """Why a query has no prediction, in a phrase."""
    spec, q = model_spec(session.atlas.model), session.query
    if spec is not None and not spec.predicts:
        return f"the atlas's model ({display_name(session.atlas.model)}) does not predict taxa"
    if q is not None and q.kind == "text":
        return "the query is text; a prediction comes from a photo"
    if q is not None and q.kind == "result":
        return "the query is a record's stored vector; the model predicts from photos it is shown"
    if session.encoding is not None and session.encoding.note:
        return session.encoding.note + ". The Consensus tab shows what the nearest images agree on"
    return "the model gave none for this query"


class Detail:
    """Right column: the selected result beside the query, its taxonomy and its source."""

    def __init__(self, on_more_like, on_mark=None):
        self.mark = mark_button(False, on_mark or (lambda marked: None))
        self.copies = w.HTML()
        self.place = w.HTML()
        self.query_image = w.HTML(layout=w.Layout(width="150px", display="none"))
        self.query_note = w.HTML(layout=w.Layout(width="150px"))
        self.result_image = w.HTML(layout=w.Layout(width="150px"))
        self.result_note = w.HTML()
        self.taxonomy = w.HTML()
        self.source = w.HTML()
        self.more = w.Button(description="More like this", disabled=True)
        self.more.on_click(lambda _b: on_more_like())
        self.widget = w.VBox([
            w.HTML("<h2 class='bnb-h2'>Selected result</h2>"),
            w.HBox([w.VBox([w.HTML("query"), self.query_image, self.query_note]), w.VBox([w.HTML("result"), self.result_image, self.result_note])]),
            self.taxonomy, self.source, self.place, w.HBox([self.more, self.mark]), self.copies,
        ], layout=w.Layout(width="340px", flex="0 0 340px", padding="4px"))

    def show(self, session: SearchSession, row: pd.Series | None, full: FetchResult | None) -> None:
        query = session.query
        if query is not None and query.image:
            self.query_image.value = html.picture(query.image, f"the query: {query.label}")
            self.query_image.layout.display = None
            self.query_note.value = ""
        else:                                   # a text, or a record without its picture at hand
            self.query_image.layout.display = "none"
            self.query_note.value = (f'<div style="font-size:12px;font-style:italic">{html.escape(query.label)}</div>'
                                     if query is not None else "")
        if row is None:
            self.taxonomy.value, self.source.value, self.copies.value, self.place.value = "", "", "", ""
            self.more.disabled = self.mark.disabled = True
            return
        self.mark.disabled = False
        show_mark(self.mark, int(row["id"]) in session.marks)
        self.copies.value = html.copies(session.copies(int(row["id"])))
        self.place.value = html.place_details(session.places.record(int(row["id"])))
        self.taxonomy.value = html.detail_table(row)
        self.source.value = html.source_table(row, session.atlas.metric)
        if full is not None and full.ok:
            self.result_image.value, self.result_note.value = html.picture(full.data, alt_text(row)), ""
            self.result_image.layout.display = None
        else:
            self.result_image.layout.display = "none"
            self.result_note.value = html.placeholder(full) if full is not None else ""
        self.more.disabled = False



class Export:
    """A download per export format (``outputs.formats``) of the current results (all, or the
    marked ones), each with the search's provenance."""

    ICONS = {"csv": "table", "json": "code", "zip": "file-archive-o", "dwc": "leaf"}

    def __init__(self, shown: list, on_prepare):
        self.marked_only = w.Checkbox(value=False, description="Marked only", indent=False,
                                      tooltip="export only the results marked ★")
        self.buttons: dict[str, w.Button] = {}
        for fmt in shown:
            b = w.Button(description=f"Prepare {fmt.label}", icon=self.ICONS.get(fmt.key, "download"), tooltip=fmt.help,
                         layout=w.Layout(width="auto"))
            b.on_click(lambda _b, key=fmt.key: on_prepare(key))
            self.buttons[fmt.key] = b
        self.links = w.HTML()
        self.progress = w.IntProgress(value=0, min=0, max=1, description="ZIP", layout=w.Layout(display="none"))
        self.widget = w.VBox([self.marked_only, w.HBox(list(self.buttons.values())), self.progress, self.links,
                              w.HTML("<div class='bnb-note'>Every export names the software, model, "
                                     "atlas, settings, query and time of the search.</div>")])

    def start(self, total: int) -> None:
        """Show the ZIP's progress bar for ``total`` images."""
        self.progress.max, self.progress.value = max(1, total), 0
        self.progress.layout.display = None
        self.buttons["zip"].disabled = True

    def step(self, done: int) -> None:
        self.progress.value = min(done, self.progress.max)

    def done(self) -> None:
        self.progress.layout.display = "none"
        self.buttons["zip"].disabled = False
