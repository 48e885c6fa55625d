"""The result gallery: every card in one widget (``Cards``, an anywidget), walkable by keyboard.

Each card is a small dict in ``Cards.cards``: its rank, names, similarity, alternative text
("#3 Arctic fox, Vulpes lagopus, similarity 0.91"), mark and copies. Thumbnails travel as
binary messages as they arrive; the page keeps them per model. The page sends back what a
person did (``select``, ``mark``, ``copies``), and :meth:`Gallery.act` routes it, so a test or
a script can act exactly as the page does. The front end is ``cards.js`` and ``cards.css``.

One widget instead of five ipywidgets per card: see docs/benchmarks.md, "Gallery cards".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anywidget
import ipywidgets as w
import pandas as pd
import traitlets

from ..images.fetch import FetchResult
from ..names import clean
from .html import scientific
from .wording import WHY

_HERE = Path(__file__).parent


class Cards(anywidget.AnyWidget):
    """The cards' front end: one model for the whole page of results."""

    _esm = _HERE / "cards.js"
    _css = _HERE / "cards.css"
    cards = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)


def similarity_words(row: pd.Series) -> tuple[str, str]:
    """The similarity as shown, and a note: exact ('similarity 0.912'), or the index's estimate
    where the record has no full vector ('similarity ≈ 0.91', fewer digits claimed)."""
    sim = float(row["similarity"])
    if bool(row.get("exact", True)):
        return f"similarity {sim:.3f}", ""
    return f"similarity ≈ {sim:.2f}", "estimated from the index's compressed codes"


def alt_text(row: pd.Series) -> str:
    """What a screen reader says for a card: '#3 Arctic fox, Vulpes lagopus, similarity 0.91'."""
    common = clean(row.get("common_name"))
    sim = float(row["similarity"])
    estimate = "" if bool(row.get("exact", True)) else "about "
    names = f"{common}, {scientific(row)}" if common else scientific(row)
    return f"#{int(row['rank'])} {names}, similarity {estimate}{sim:.2f}"


def card(row: pd.Series, marked: bool) -> dict:
    """One card's data (plain text: the page sets it as text, never as HTML)."""
    shown, note = similarity_words(row)
    copies = int(row.get("copies", 1) or 1) if "copies" in row else 1
    return {"id": int(row["id"]), "rank": int(row["rank"]), "common": clean(row.get("common_name")) or "",
            "scientific": scientific(row), "similarity": shown, "similarity_note": note, "alt": alt_text(row),
            "copies": copies, "marked": bool(marked)}


class Gallery:
    """Thumbnails that fill in as they arrive, with captions, a Details button and a mark each;
    a card standing for several copies of one image says so."""

    def __init__(self, on_select: Callable[[int], None], on_mark: Callable[[int, bool], None] | None = None,
                 on_copies: Callable[[int], None] | None = None):
        self._on_select = on_select
        self._on_mark = on_mark or (lambda i, marked: None)
        self._on_copies = on_copies or on_select
        self._images: dict[int, FetchResult] = {}
        self.progress = w.IntProgress(value=0, min=0, max=1, description="Images", layout=w.Layout(width="60%"))
        self.cards = Cards()
        self.cards.on_msg(lambda _widget, content, _buffers: self.act(content))
        self.widget = w.VBox([self.progress, self.cards])

    @property
    def ids(self) -> list[int]:
        """The ids of the cards shown, in order."""
        return [c["id"] for c in self.cards.cards]

    def card(self, hit_id: int) -> dict:
        """The card of ``hit_id`` (``KeyError`` if it is not shown)."""
        for c in self.cards.cards:
            if c["id"] == int(hit_id):
                return c
        raise KeyError(hit_id)

    def picture(self, hit_id: int) -> FetchResult | None:
        """The thumbnail (or the reason there is none) sent for a card, None while loading."""
        return self._images.get(int(hit_id))

    def show(self, hits: pd.DataFrame, marks: set[int] = frozenset()) -> None:
        """A new page of cards (loading pictures)."""
        self._images = {}
        self.cards.send({"event": "clear"})
        self.cards.cards = [card(row, int(row["id"]) in marks) for _, row in hits.iterrows()]
        self.progress.max = max(1, len(self.cards.cards))
        self.progress.value = 0

    def set_mark(self, hit_id: int, marked: bool) -> None:
        """Show a card's mark (after a change made in the detail panel)."""
        self.cards.cards = [dict(c, marked=bool(marked)) if c["id"] == int(hit_id) else c for c in self.cards.cards]

    def set_selected(self, hit_id: int | None) -> None:
        """Outline the card whose details are open."""
        self.cards.selected = -1 if hit_id is None else int(hit_id)

    def fill(self, result: FetchResult) -> None:
        """A card's thumbnail arrived (or the reason it cannot)."""
        key = int(result.key)
        if key not in self.ids:
            return
        self._images[key] = result
        self._send_picture(result)
        self.progress.value = min(self.progress.max, self.progress.value + 1)

    def _send_picture(self, result: FetchResult) -> None:
        if result.ok:
            self.cards.send({"event": "thumb", "id": int(result.key)}, buffers=[bytes(result.data)])
        else:
            self.cards.send({"event": "thumb", "id": int(result.key), "missing": WHY.get(result.status, "Unavailable"),
                             "why": result.message})

    def act(self, message: dict) -> None:
        """Do what the page asks: ``{"event": "select" | "mark" | "copies" | "ready", "id": ...}``."""
        event, hit_id = message.get("event"), message.get("id")
        if event == "ready":                       # a view drawn now: send the pictures it missed
            for result in self._images.values():
                self._send_picture(result)
            return
        if not isinstance(hit_id, int) or hit_id not in self.ids:
            return                                 # a stale card from the previous page
        if event == "select":
            self._on_select(hit_id)
        elif event == "mark":
            self._on_mark(hit_id, bool(message.get("marked")))
        elif event == "copies":
            self._on_copies(hit_id)
