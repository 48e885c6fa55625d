"""The tabs that show one search's results: the gallery, the prediction, the taxonomic tree
and the neighbours' consensus (the others have a module each)."""

from __future__ import annotations

import ipywidgets as w

from ..layout import RANKS
from . import html
from .callbacks import guarded
from .cards import Gallery
from .tab import App, Tab
from .views import Prediction


class GalleryTab(Tab, Gallery):
    """The result cards; selecting, marking and opening folded copies go to the dashboard."""

    key, title = "gallery", "Gallery"

    def __init__(self, app: App):
        Tab.__init__(self, app)
        Gallery.__init__(self, app.select, on_mark=app.mark, on_copies=app.select)

    def on_results(self) -> None:
        self.show(self.app.session.hits, self.app.session.marks)
        self.set_selected(self.app.session.selected)


class PredictionTab(Tab, Prediction):
    """BioCLIP's prediction at a rank, over the whole Tree of Life or within a checklist."""

    key, title = "prediction", "Prediction"

    def __init__(self, app: App):
        Tab.__init__(self, app)
        Prediction.__init__(self, self.redraw, on_checklist=self.use_checklist, on_clear=self.clear_checklist)

    def on_query(self) -> None:
        self.redraw()

    def on_results(self) -> None:
        self.redraw()

    @guarded
    def redraw(self) -> None:
        """Draw the prediction at the chosen rank (the rank menu's callback)."""
        self.show(self.app.session)

    @guarded
    def use_checklist(self, files) -> None:
        """Restrict the prediction to the names of an uploaded checklist CSV."""
        if not files:
            return
        from ..encoders.within import Within
        f = files[0]
        self.app.session.checklist = Within.from_csv(bytes(f["content"]), f["name"])
        self._changed()

    @guarded
    def clear_checklist(self) -> None:
        self.app.session.checklist = None
        self._changed()

    def _changed(self) -> None:
        self.redraw()
        self.app.tabs["consensus"].on_results()


class TaxonomyTab(Tab):
    """The results as a taxonomic tree."""

    key, title = "taxonomy", "Taxonomy"

    def __init__(self, app: App):
        super().__init__(app)
        self.widget = w.HTML()

    def on_results(self) -> None:
        self.widget.value = html.tree(self.app.session.tree())


class ConsensusTab(Tab):
    """The neighbours' consensus at each rank beside the model's prediction."""

    key, title = "consensus", "Consensus"

    def __init__(self, app: App):
        super().__init__(app)
        self.widget = w.HTML()

    def on_results(self) -> None:
        s = self.app.session
        preds = {r: s.predictions(r, 1) for r in RANKS}
        self.widget.value = html.consensus(s.consensus(), preds, model=s.atlas.model)
