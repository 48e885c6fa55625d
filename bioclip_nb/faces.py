"""The faces the session, the batch code, the CLI and the tutorials use, each with two
implementations: in this process (``Atlas``, the encoders, ``ImageFetcher``, ``LocalFigures``)
and through a ``bioclip-nb serve`` (``service.client``'s ``RemoteAtlas``, ``RemoteEncoder``,
``RemoteFetcher``, ``RemoteFigures``).

Code written against these protocols cannot tell which it was handed, so each member here must
exist, and mean the same, on both sides: ``tests/test_conformance.py`` runs one set of behaviours
against both and compares the answers. Where a server cannot do something, its method says so
with a clear error; a missing attribute is never the answer. The encoder's face is
``encoders.base.Encoder``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .encoders.base import Encoder as EncoderLike
from .images.fetch import FetchResult
from .insight.figures import SearchFigures
from .request import SearchRequest

__all__ = ["AtlasLike", "EncoderLike", "FetcherLike", "FiguresLike"]


@runtime_checkable
class AtlasLike(Protocol):
    """An atlas to search: its facts, its search, its records."""

    path: Path
    model: str
    count: int
    dim: int
    metric: str
    nlist: int
    fingerprint: str
    content_fingerprint: str

    def search(self, vectors, top_n: int = ..., nprobe: int | None = None, scope=..., taxon=None, model: str | None = None,
               fold: bool = False, exact: bool | None = None) -> pd.DataFrame: ...
    # (the arguments are a ``request.SearchRequest``'s: build one and call ``request.run(atlas, ...)``)

    def lookup(self, ids) -> pd.DataFrame: ...

    def stored_vector(self, record_id: int) -> np.ndarray | None: ...

    def scope_counts(self, compute: bool = True) -> dict[str, int] | None: ...

    def taxon_values(self, rank, prefix: str = "", limit: int = 50) -> list[str]: ...

    def info(self) -> dict: ...

    def close(self) -> None: ...


@runtime_checkable
class FetcherLike(Protocol):
    """Result images, politely; a typed URL through the address guard. Never raises for a bad host."""

    def fetch(self, url: str | None, variant: str = "thumb", key: object = None, cancel=None) -> FetchResult: ...

    def fetch_many(self, urls: Iterable[tuple[object, str | None]], variant: str = "thumb", cancel=None,
                   on_result: Callable[[FetchResult], None] | None = None) -> Iterator[FetchResult]: ...

    def fetch_user_url(self, url: str | None, variant: str = "full", key: object = None, cancel=None) -> FetchResult: ...

    def usage(self) -> dict: ...

    def close(self) -> None: ...


@runtime_checkable
class FiguresLike(Protocol):
    """The Plots tab's pictures."""

    def search(self, vector, request: SearchRequest, hits: pd.DataFrame) -> SearchFigures: ...

    def map(self, vector, nprobe: int, hits: pd.DataFrame | None) -> bytes: ...
