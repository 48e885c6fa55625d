"""One search request: everything a search needs besides the query, its defaults and legal ranges.

The dashboard's controls, the CLI's flags, the server's JSON body, a shared link, the batch code
and the tutorials each build a :class:`SearchRequest`; ``Atlas.search`` checks its arguments by
building one too. So a value refused in one place is refused everywhere, with the same message,
and the defaults (``limits``) are written once::

    >>> from bioclip_nb.request import SearchRequest
    >>> req = SearchRequest(top_n=20, scope="inat", taxon={"class": "Aves"})
    >>> req.for_atlas(nlist=256).nprobe       # no depth given: 16 cells, or all of a smaller atlas
    16
    >>> hits = req.run(atlas, vector, model=encoder.model_id)   # doctest: +SKIP

This module is a leaf beside ``limits`` and ``layout``: it imports nothing else from bioclip-nb.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from . import limits
from .layout import Scope, parse_taxon

if TYPE_CHECKING:
    import pandas as pd


class Searchable(Protocol):
    """What :meth:`SearchRequest.run` needs of an atlas (``faces.AtlasLike`` has more)."""

    nlist: int

    def search(self, vectors, **kwargs: Any) -> pd.DataFrame: ...


@dataclass(frozen=True)
class SearchRequest:
    """How to search, checked on construction (a ``ValueError`` names the legal range).

    ``top_n`` hits per query; ``nprobe`` IVF cells to scan (None: :func:`limits.default_nprobe`
    of the atlas searched); ``scope`` and ``taxon`` (``{"genus": "Vulpes"}``) filter the records;
    ``fold`` folds copies of one image into one hit and refills the page; ``exact`` None
    re-ranks with full vectors whenever the atlas has them, False ranks by PQ codes alone, True
    insists on full vectors.
    """

    top_n: int = limits.DEFAULT_TOP_N
    nprobe: int | None = None
    scope: str = Scope.ALL.value
    taxon: dict[str, str] = field(default_factory=dict)
    fold: bool = False
    exact: bool | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "top_n", limits.check_top_n(self.top_n))
        if self.nprobe is not None:
            set_(self, "nprobe", limits.check_nprobe(self.nprobe, 0))     # the atlas's own bound: for_atlas
        set_(self, "scope", Scope.parse(self.scope).value)
        set_(self, "taxon", {rank.value: name for rank, name in parse_taxon(self.taxon).items()})
        if not isinstance(self.fold, bool):
            raise ValueError(f"fold must be true or false, got {self.fold!r}")
        if self.exact not in (None, True, False):
            raise ValueError(f"exact must be true, false or unset, got {self.exact!r}")

    @classmethod
    def for_nlist(cls, nlist: int, **settings: Any) -> SearchRequest:
        """A request for an atlas of ``nlist`` cells: its depth checked against the atlas (the
        message names the atlas's range) and made concrete. What ``Atlas.search`` builds."""
        nprobe = settings.pop("nprobe", None)
        return cls(nprobe=limits.default_nprobe(nlist) if nprobe is None else limits.check_nprobe(nprobe, nlist), **settings)

    def depth(self, nlist: int) -> int:
        """Cells a search of an atlas with ``nlist`` cells scans (checked against ``nlist``)."""
        return limits.default_nprobe(nlist) if self.nprobe is None else limits.check_nprobe(self.nprobe, nlist)

    def for_atlas(self, nlist: int) -> SearchRequest:
        """This request with its depth made concrete for an atlas of ``nlist`` cells."""
        return replace(self, nprobe=self.depth(nlist))

    def replace(self, **changes: Any) -> SearchRequest:
        """A copy with ``changes`` (checked like a new request)."""
        return replace(self, **changes)

    def search_args(self) -> dict[str, Any]:
        """The keyword arguments of ``Atlas.search`` (and ``RemoteAtlas.search``)."""
        return {"top_n": self.top_n, "nprobe": self.nprobe, "scope": self.scope, "taxon": dict(self.taxon) or None,
                "fold": self.fold, "exact": self.exact}

    def run(self, atlas: Searchable, vectors, model: str | None = None) -> pd.DataFrame:
        """Search ``atlas`` (local or a server's) for ``vectors`` with this request."""
        return atlas.search(vectors, model=model, **self.for_atlas(atlas.nlist).search_args())

    def to_json(self) -> dict[str, Any]:
        """The request as the server's ``/search`` body takes it (without the vectors)."""
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SearchRequest:
        """The inverse of :meth:`to_json`; unknown keys are refused, missing ones take the defaults."""
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown search settings: {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in body.items() if v is not None or k in ("nprobe", "exact")})
