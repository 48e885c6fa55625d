"""A search as a link: the dashboard's state in the page's query string, and back.

``?q=Vulpes+vulpes&scope=inat&taxon=genus:Vulpes&nprobe=32&top=20&sel=1234`` repeats a search;
``atlas=KEY`` names which of the dashboard's atlases (and so which model) unless it is the first.
The query is a text (``q``), an image URL (``url``) or a record of the atlas (``like``); an
uploaded photo cannot travel in a link, and the page says so. Voilà hands the query string to
the kernel (``QUERY_STRING``); :class:`ShareLink` (an ``anywidget``) keeps the browser's
address bar in step with the dashboard and copies the link.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

import anywidget
import traitlets

from ..layout import RANKS, Scope

UPLOAD_NOTE = ("This link repeats the settings but not your uploaded photo: a photo cannot travel in a link. "
               "To share the whole search, use the photo's web address (Use image URL) instead.")


@dataclass
class LinkState:
    """What a link carries."""

    text: str = ""
    url: str = ""
    like: int | None = None
    scope: str = Scope.ALL.value
    taxon: dict[str, str] = field(default_factory=dict)
    nprobe: int | None = None
    top_n: int | None = None
    fold: bool = True
    selected: int | None = None
    atlas: str = ""

    def to_query(self) -> str:
        """The query string (no leading ``?``), with only what differs from a fresh page."""
        items: list[tuple[str, str]] = [("atlas", self.atlas)] if self.atlas else []
        if self.text:
            items.append(("q", self.text))
        elif self.url:
            items.append(("url", self.url))
        elif self.like is not None:
            items.append(("like", str(self.like)))
        if self.scope != Scope.ALL.value:
            items.append(("scope", self.scope))
        items += [("taxon", f"{rank}:{name}") for rank, name in self.taxon.items()]
        for key, value in (("nprobe", self.nprobe), ("top", self.top_n), ("sel", self.selected)):
            if value is not None:
                items.append((key, str(value)))
        if not self.fold:
            items.append(("fold", "0"))
        return urlencode(items)

    @classmethod
    def parse(cls, query: str | None) -> LinkState:
        """The inverse of :meth:`to_query`; raises ``ValueError`` naming a part it cannot read."""
        params = parse_qs((query or "").lstrip("?"), keep_blank_values=False)

        def one(key: str) -> str | None:
            values = params.get(key)
            return values[-1].strip() if values else None

        state = cls(text=one("q") or "", url=one("url") or "", atlas=one("atlas") or "")
        state.like = _int(one("like"), "like")
        scope = one("scope")
        if scope:
            state.scope = Scope.parse(scope).value
        for item in params.get("taxon", []):
            rank, sep, name = item.partition(":")
            if not sep or rank.strip().lower() not in RANKS or not name.strip():
                raise ValueError(f"the link's taxon {item!r} should look like genus:Vulpes")
            state.taxon[rank.strip().lower()] = name.strip()
        state.nprobe, state.top_n, state.selected = _int(one("nprobe"), "nprobe"), _int(one("top"), "top"), _int(one("sel"), "sel")
        state.fold = (one("fold") or "1") not in ("0", "false", "no")
        return state

    @property
    def has_query(self) -> bool:
        return bool(self.text or self.url or self.like is not None)


def _int(value: str | None, key: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"the link's {key} should be a whole number, got {value!r}") from None


def in_voila() -> bool:
    """Whether this kernel serves a Voilà page (which hands it the page's query string)."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("voila")


def query_string_from_env() -> str:
    """The page's query string under Voilà, else empty."""
    return os.environ.get("QUERY_STRING", "") if in_voila() else ""


class ShareLink(anywidget.AnyWidget):
    """A 'Copy link' button that also keeps the address bar in step with the search."""

    _esm = """
    function render({ model, el }) {
      const button = document.createElement("button");
      button.textContent = "Copy link to this search";
      button.className = "bnb-share-button jupyter-button";
      const box = document.createElement("input");
      box.readOnly = true;
      box.className = "bnb-share-url";
      box.style.display = "none";
      box.style.width = "100%";
      const note = document.createElement("div");
      note.className = "bnb-share-note";
      note.style.fontSize = "12px";
      const href = () => {
        const q = model.get("query");
        return location.origin + location.pathname + (q ? "?" + q : "");
      };
      const sync = () => {
        if (model.get("write_url")) { history.replaceState(history.state, "", href()); }
        box.value = href();
      };
      button.addEventListener("click", async () => {
        sync();
        box.style.display = "block";
        box.select();
        let copied = false;
        try { await navigator.clipboard.writeText(box.value); copied = true; } catch (e) { copied = false; }
        note.textContent = (copied ? "Link copied. " : "Copy the link above. ") + model.get("note");
        model.set("copies", model.get("copies") + 1);
        model.save_changes();
      });
      model.on("change:query", sync);
      model.on("change:note", () => { if (box.style.display !== "none") { note.textContent = model.get("note"); } });
      el.append(button, box, note);
      sync();
    }
    export default { render };
    """
    query = traitlets.Unicode("").tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    write_url = traitlets.Bool(False).tag(sync=True)
    copies = traitlets.Int(0).tag(sync=True)
