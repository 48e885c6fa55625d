"""Taxonomic ranks, and what a set of results says about them.

``RANKS`` is the one list of rank column names, kingdom to species, used everywhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum

import pandas as pd

RANKS: tuple[str, ...] = ("kingdom", "phylum", "class", "order", "family", "genus", "species")


class Rank(str, Enum):
    """A Linnaean rank, valued by its metadata column name."""

    KINGDOM = "kingdom"
    PHYLUM = "phylum"
    CLASS = "class"
    ORDER = "order"
    FAMILY = "family"
    GENUS = "genus"
    SPECIES = "species"

    @classmethod
    def parse(cls, name: "str | Rank") -> "Rank":
        """``Rank.parse("Class")`` -> ``Rank.CLASS``; a clear ``ValueError`` for anything else."""
        if isinstance(name, Rank):
            return name
        try:
            return cls(str(name).strip().lower())
        except ValueError:
            raise ValueError(
                f"unknown rank {name!r}: use one of {', '.join(RANKS)}"
            ) from None

    @property
    def index(self) -> int:
        """0 for kingdom .. 6 for species."""
        return RANKS.index(self.value)


def clean_name(value: object) -> str | None:
    """A rank value as text, or None when it is missing (NULL, NaN, ``""``, ``"None"``)."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    return text or None


def parse_taxon(items: "dict[str, str] | list[str] | tuple[str, ...] | None") -> dict[Rank, str]:
    """Turn ``{"class": "Aves"}`` or ``["class=Aves", "genus=Parus"]`` into ``{Rank: name}``."""
    if not items:
        return {}
    pairs: list[tuple[str, str]] = []
    if isinstance(items, dict):
        pairs = [(str(k), str(v)) for k, v in items.items()]
    else:
        for item in items:
            rank, sep, name = str(item).partition("=")
            if not sep or not name.strip():
                raise ValueError(f"taxon filter {item!r} must look like RANK=NAME, e.g. class=Aves")
            pairs.append((rank, name))
    taxon: dict[Rank, str] = {}
    for rank, name in pairs:
        if not name.strip():
            raise ValueError(f"taxon filter for {rank!r} has an empty name")
        taxon[Rank.parse(rank)] = name.strip()
    return taxon


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
        names = [n for n in (clean_name(v) for v in hits.get(rank.value, [])) if n]
        if rank is Rank.SPECIES and "genus" in hits:
            names = [
                f"{clean_name(g) or '?'} {clean_name(s)}"
                for g, s in zip(hits["genus"], hits["species"])
                if clean_name(s)
            ]
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
    children: dict[str | None, "TaxonNode"] | None = None

    def child(self, rank: Rank, name: str | None) -> "TaxonNode":
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
            node = node.child(rank, clean_name(row.get(rank.value)))
            node.count += 1
    return root
