"""The model selector: which of the dashboard's atlases (``sources``) is searched.

Switching hands the session the other atlas with its own encoder, fetcher and figures
(``SearchSession.switch``); the query follows, encoded again by that atlas's model, and is
searched again when it had results. Nothing of one model's query reaches the other's index.
"""

from __future__ import annotations

import ipywidgets as w

from . import html
from .callbacks import guarded
from .sources import Source, labels
from .state import Level, Status
from .tab import App, Part
from .views import LABEL_WIDTH


class ModelSwitch(Part):
    """The "Model" menu above the query (hidden when the dashboard holds one atlas)."""

    def __init__(self, app: App, sources: list[Source]):
        super().__init__(app)
        self.sources = sources
        self.current = 0
        self.menu = w.Dropdown(options=[(label, i) for i, label in enumerate(labels(sources))], value=0, description="Model",
                               style={"description_width": LABEL_WIDTH}, layout=w.Layout(width="100%"),
                               tooltip="which atlas to search: each is searched with its own model")
        self.menu.observe(lambda ch: self.switch(ch["new"]), names="value")
        self.widget = w.VBox([w.HTML("<h2 class='bnb-h2'>Atlas</h2>"), self.menu],
                             layout=w.Layout(display=None if len(sources) > 1 else "none"))

    @property
    def source(self) -> Source:
        """The atlas searched now."""
        return self.sources[self.current]

    @property
    def key(self) -> str:
        """The searched atlas's key ('' for the first: a link leaves it out)."""
        return self.source.key if self.current else ""

    def index_of(self, key: str) -> int | None:
        return next((i for i, s in enumerate(self.sources) if s.key == key), None)

    def select(self, key: str) -> bool:
        """Switch to the atlas ``key`` (a link's ``atlas=``); False if the dashboard has none by that key."""
        i = self.index_of(key)
        if i is None:
            return False
        self.menu.value = i           # fires switch() unless it is the current one
        return True

    @guarded
    def switch(self, i: int) -> None:
        if i == self.current:
            return
        app, source = self.app, self.sources[i]
        had_results = self.session.hits is not None
        self.set_busy(True, f"Switching to {source.label}: its model loads the first time...")
        self.current = i
        note = self.session.switch(source)
        app.on_atlas_changed()
        app.after_query()
        if self.session.encoding is not None and had_results:
            app.run_search()
            if note:
                self.session.status = Status(f"{note} {self.session.status.message}", self.session.status.level)
        else:
            self.session.status = Status(note or f"Now searching {source.label}.",
                                         Level.WARNING if note.endswith("new query.") else Level.INFO)
        app.links.update()


def header_html(app) -> str:
    """The page's banner for the atlas searched now."""
    return html.CSS + html.header(app.session.atlas, app.session.server)
