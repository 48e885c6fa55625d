"""The "Compare models" tab: for the current photo or text, each model's top hits in its own
atlas and its prediction, side by side (``insight.compare``). Present when the dashboard holds
atlases of two or more models; drawn when the tab is opened."""

from __future__ import annotations

from html import escape

import ipywidgets as w

from ..insight.compare import Comparison, compare
from ..names import scientific_name
from .callbacks import guarded
from .tab import App, DrawnWhenShown

EMPTY = ("<p>Upload a photo (or type a name) and search: this tab then shows the top hits of each model "
         "side by side, each searched in its own atlas with the same settings.</p>")


#: Each model's two columns: its hits (what is left of the width) and their similarity.
MODEL_COLUMNS = "<col><col style='width:6em'>"


class CompareTab(DrawnWhenShown):
    """Each model's answer to the current query, side by side."""

    key, title = "compare", "Compare models"

    @classmethod
    def wanted(cls, app: App) -> bool:
        """Only a dashboard holding atlases of two or more models has models to compare."""
        return len({s.atlas.model for s in app.sources}) > 1

    def __init__(self, app: App):
        super().__init__(app)
        self.widget = w.HTML(EMPTY)
        self.stale = True
        self.comparison: Comparison | None = None

    def on_query(self) -> None:
        self.stale = True
        self.widget.value = EMPTY

    @guarded
    def render(self) -> None:
        s = self.session
        if not self.stale or s.hits is None:
            return
        query = s.query_input
        if query is None:
            self.widget.value = ("<p>This query is a record of one atlas; the other model has no such record to "
                                 "start from. Upload its photo, or type a name, to compare.</p>")
            return
        before = s.status                    # the search's own line comes back once compared
        self.set_busy(True, "Comparing models: each encodes the query (the first time loads it) and searches its atlas...")
        sides = [(src.atlas, src.encoder()) for src in _one_per_model(self.app.sources)]
        self.comparison = compare(query, sides, s.request, cache=s.cache)
        self.widget.value = comparison_html(self.comparison)
        self.stale = False
        s.status = before


def _one_per_model(sources):
    seen, out = set(), []
    for src in sources:
        if src.atlas.model not in seen:
            seen.add(src.atlas.model)
            out.append(src)
    return out


def comparison_html(c: Comparison) -> str:
    """The comparison as a summary and one table; every name escaped. A species found by every
    model is marked (★) in each column."""
    shared = set(c.shared_species())
    table = c.table()
    names = [side.name for side in c.sides]
    head = "".join(f"<th scope='col'>{escape(n)}</th><th scope='col'>similarity</th>" for n in names)
    rows = []
    for i, row in table.iterrows():
        cells = []
        for side, name in zip(c.sides, names):
            hit = row[name]
            sp = _species_of(side, i)
            mark = " ★" if sp in shared else ""
            sim = row[f"{name} similarity"]
            cells.append(f"<td class='bnb-wrap'>{escape(str(hit))}{mark}</td>"
                         f"<td>{'' if sim is None or sim != sim else f'{sim:.3f}'}</td>")
        rows.append(f"<tr><td>{int(row['rank'])}</td>{''.join(cells)}</tr>")
    summary = "".join(f"<li>{escape(line)}</li>" for line in c.summary())
    return (f"<ul>{summary}</ul><p class='bnb-note'>★ a species both models found. Each model searched its own atlas "
            "with the same settings; similarities of different models are not on one scale.</p>"
            "<table class='bnb-table bnb-compare'><caption>Top hits by model</caption>"
            f"<colgroup><col style='width:2.5em'>{MODEL_COLUMNS * len(names)}</colgroup>"
            f"<thead><tr><th scope='col'>#</th>{head}</tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _species_of(side, i: int) -> str | None:
    if i >= len(side.hits):
        return None
    row = side.hits.iloc[i]
    return scientific_name(row.get("genus"), row.get("species"))
