"""What a set of results says about taxonomy: the neighbours' consensus and the result tree.

The ranks themselves (``Rank``, ``RANKS``) and taxon filters are defined in ``layout``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .layout import Rank
from .names import clean, scientific_name

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Consensus:
    """The neighbours' majority at one rank: ``name`` shared by ``agreement`` of ``total``."""

    rank: Rank
    name: str | None
    count: int
    total: int

    @property
    def agreement(self) -> float:
        """Share of neighbours (with a value at this rank) that agree, 0..1."""
        return self.count / self.total if self.total else 0.0


def neighbour_consensus(hits: pd.DataFrame) -> list[Consensus]:
    """The majority name at each rank among the hits, ignoring missing values."""
    out = []
    for rank in Rank:
        if rank is Rank.SPECIES:
            names = [scientific_name(g, s) for g, s in zip(hits.get("genus", []), hits.get("species", [])) if clean(s)]
            names = [n for n in names if n]
        else:
            names = [n for n in (clean(v) for v in hits.get(rank.value, [])) if n]
        if not names:
            out.append(Consensus(rank, None, 0, 0))
            continue
        name, count = Counter(names).most_common(1)[0]
        out.append(Consensus(rank, name, count, len(names)))
    return out


@dataclass
class TaxonNode:
    """One node of the result tree: a name at a rank, how many hits fall under it."""

    rank: Rank | None
    name: str | None
    count: int = 0
    children: dict[str | None, TaxonNode] | None = None

    def child(self, rank: Rank, name: str | None) -> TaxonNode:
        if self.children is None:
            self.children = {}
        node = self.children.get(name)
        if node is None:
            node = self.children[name] = TaxonNode(rank, name)
        return node

    def walk(self, depth: int = 0):
        """Yield ``(depth, node)`` depth-first, children by descending count then name."""
        yield depth, self
        for node in sorted((self.children or {}).values(), key=lambda n: (-n.count, n.name or "")):
            yield from node.walk(depth + 1)


def result_tree(hits: pd.DataFrame) -> TaxonNode:
    """Nest the hits kingdom -> species; a missing rank becomes a node named None."""
    root = TaxonNode(None, None)
    for _, row in hits.iterrows():
        root.count += 1
        node = root
        for rank in Rank:
            node = node.child(rank, clean(row.get(rank.value)))
            node.count += 1
    return root
