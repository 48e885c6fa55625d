"""The atlases one dashboard can search, each with the parts that belong to it.

A dashboard holds one atlas or several (a BioCLIP 2 atlas and a BioCLIP 2.5 atlas, say); the
model selector switches between them. Each :class:`Source` brings its own encoder (its model's,
loaded on first use and kept), its own fetcher (a record's image is named by that atlas's ids)
and its own figures, so a query is always encoded by the model of the atlas it is searched in.
They come from atlas directories (this process) or from a server's atlases (``/v1/atlases``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..encoders import Encoder
from ..faces import AtlasLike, FetcherLike, FiguresLike
from ..layout import display_name


@dataclass
class Source:
    """One atlas and its parts. ``encoder()`` loads the model once (the first search needs it)."""

    key: str
    atlas: AtlasLike
    load: Callable[[], Encoder]
    fetcher: FetcherLike
    figures: FiguresLike | None = None
    occurrences: object = None
    _encoder: Encoder | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def encoder(self) -> Encoder:
        """This atlas's encoder, loaded on first use and kept."""
        with self._lock:
            if self._encoder is None:
                self._encoder = self.load()
            return self._encoder

    @property
    def label(self) -> str:
        """What the model selector shows: 'BioCLIP 2.5 Huge (1,200 images)'."""
        return f"{display_name(self.atlas.model)} ({self.atlas.count:,} images)"


def labels(sources: Sequence[Source]) -> list[str]:
    """The selector's labels; an atlas whose model another also uses is told apart by its key."""
    models = [s.atlas.model for s in sources]
    return [f"{s.label} · {s.key}" if models.count(s.atlas.model) > 1 else s.label for s in sources]

    def close(self) -> None:
        self.atlas.close()
        self.fetcher.close()


def local_sources(paths: Sequence[Path], settings, device: str = "auto") -> list[Source]:
    """Sources over atlas directories, opened here (``AtlasError`` or ``OSError`` for a bad one)."""
    from ..core.atlas import Atlas
    from ..core.locate import atlas_keys
    from ..encoders import load_encoder
    from ..images.fetch import machine_fetcher
    from ..occurrences import Occurrences
    opened: list = []
    try:
        for path in paths:
            opened.append(Atlas.open(path, settings=settings))
    except BaseException:
        for atlas in opened:
            atlas.close()
        raise
    sources = []
    for key, atlas in zip(atlas_keys(opened), opened, strict=True):
        fetcher = machine_fetcher(settings, atlas.path)
        sources.append(Source(key, atlas, lambda model=atlas.model: load_encoder(model, device=device), fetcher,
                              occurrences=Occurrences(fetcher, settings.gbif_api)))
    return sources


def served_sources(server: str, settings) -> list[Source]:
    """Sources over a server's atlases, the default first (``ServerError`` if it does not answer)."""
    from ..service.client import connect
    first = connect(server, settings=settings)
    entries = first.client.atlases()
    sources = [_served(entries[0]["key"] or "default", first)]
    for entry in entries[1:]:
        conn = connect(server, settings=settings, atlas=entry["key"])
        sources.append(_served(entry["key"], conn))
    return sources


def _served(key: str, conn) -> Source:
    return Source(key, conn.atlas, lambda: conn.encoder, conn.fetcher, conn.figures, conn.occurrences)
