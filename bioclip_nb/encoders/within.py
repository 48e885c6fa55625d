"""What a prediction may be restricted to: names at one rank, from a taxon filter or a checklist.

A regional checklist, a lab's study taxa or the dashboard's taxon filter narrow BioCLIP 2's
prediction to part of the Tree of Life. The checklist CSV follows pybioclip's ``--subset``
format: the first column is named after a rank (``species``, ``genus``, ... ``kingdom``) and
lists the names (species as ``Genus epithet``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..layout import RANKS, Rank, parse_taxon


@dataclass(frozen=True)
class Within:
    """Names at one rank a prediction is restricted to, and how to say so."""

    rank: Rank
    names: tuple[str, ...]
    label: str

    @classmethod
    def of_taxon(cls, taxon) -> Within | None:
        """The most specific rank of a taxon filter (``{"class": "Aves", "genus": "Parus"}`` -> genus Parus)."""
        parsed = parse_taxon(taxon)
        if not parsed:
            return None
        rank = max(parsed, key=lambda r: r.index)
        return cls(rank, (parsed[rank],), f"{rank.value} {parsed[rank]}")

    @classmethod
    def from_csv(cls, data: bytes | str | Path, name: str | None = None) -> Within:
        """A checklist: a CSV whose first column is named after a rank. ``data`` is a path or the file's bytes."""
        source = name or (Path(data).name if not isinstance(data, bytes) else "checklist")
        try:
            frame = pd.read_csv(io.BytesIO(data) if isinstance(data, bytes) else Path(data), dtype=str)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the checklist {source}: {exc}") from None
        if frame.empty or not len(frame.columns):
            raise ValueError(f"the checklist {source} lists no names")
        column = str(frame.columns[0]).strip().lower()
        if column not in RANKS:
            raise ValueError(f"the first column of the checklist {source} is {frame.columns[0]!r}; name it after a rank "
                             f"({', '.join(RANKS)}), e.g. 'species' with names like 'Vulpes vulpes'")
        names = tuple(dict.fromkeys(n.strip() for n in frame.iloc[:, 0].dropna() if n.strip()))
        if not names:
            raise ValueError(f"the checklist {source} lists no names under {column!r}")
        rank = Rank.parse(column)
        what = f"{len(names)} {column if len(names) == 1 else _plural(column)}"
        return cls(rank, names, f"{source} ({what})")

    @classmethod
    def parse(cls, text: str) -> Within:
        """``RANK=NAME`` or the path of a checklist CSV (the CLI's ``--predict-within``)."""
        if "=" in text and not Path(text).is_file():
            return cls.of_taxon([text])
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(f"--predict-within takes RANK=NAME (e.g. genus=Vulpes) or a checklist CSV; "
                             f"{text!r} is neither")
        return cls.from_csv(path)

    def to_json(self) -> dict:
        return {"rank": self.rank.value, "names": list(self.names), "label": self.label}

    @classmethod
    def from_json(cls, data: dict) -> Within:
        """The inverse of :meth:`to_json`; a ``ValueError`` saying what a malformed one lacks."""
        if not isinstance(data, dict) or "rank" not in data or not isinstance(data.get("names"), list | tuple):
            raise ValueError('a restriction looks like {"rank": "genus", "names": ["Vulpes"], "label": "genus Vulpes"}')
        names = tuple(str(n) for n in data["names"])
        if not names:
            raise ValueError("a restriction needs at least one name")
        return cls(Rank.parse(data["rank"]), names, str(data.get("label") or data["rank"]))


def _plural(rank: str) -> str:
    return {"species": "species", "genus": "genera", "family": "families", "class": "classes",
            "phylum": "phyla", "kingdom": "kingdoms", "order": "orders"}[rank]
