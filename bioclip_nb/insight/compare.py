"""Two models on one photo: each model's own top hits in its own atlas, and its prediction,
side by side (the dashboard's "Compare models" tab, and a teacher's notebook).

Each side encodes the query with its atlas's model and searches that atlas with the same
settings; nothing of one model's encoding reaches the other's index. Where the two atlases hold
the same images (BioCLIP 2 and BioCLIP 2.5 atlases of TreeOfLife-200M, both keyed by uuid),
the lists can be read against each other image by image; otherwise, species by species.

>>> from bioclip_nb.insight.compare import compare
>>> c = compare(open("fox.jpg", "rb").read(), [(atlas2, encoder2), (atlas25, encoder25)])
>>> c.table()          # rank | BioCLIP 2 | similarity | BioCLIP 2.5 Huge | similarity
>>> c.summary()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from ..encoders import Encoder, EncodingCache, Prediction
from ..faces import AtlasLike
from ..images.uploads import load_upload
from ..layout import Rank, display_name
from ..names import clean, scientific_name
from ..request import SearchRequest


@dataclass
class Side:
    """One model's answer: its hits in its atlas and its own top predictions at species."""

    model: str
    hits: pd.DataFrame
    predictions: list[Prediction] = field(default_factory=list)
    note: str = ""                     # why there is no prediction, if there is none

    @property
    def name(self) -> str:
        return display_name(self.model)

    def species(self) -> list[str]:
        """The hits' species ('Genus epithet'), best first, each once."""
        names = [scientific_name(g, s) for g, s in zip(self.hits.get("genus", []), self.hits.get("species", []))]
        return list(dict.fromkeys(n for n in names if n))


@dataclass
class Comparison:
    """Each model's answer to one query."""

    query: str
    sides: list[Side]

    def table(self) -> pd.DataFrame:
        """Rank by rank: each model's hit (common and scientific name) and its similarity."""
        columns: dict[str, list] = {}
        depth = max((len(s.hits) for s in self.sides), default=0)
        columns["rank"] = list(range(1, depth + 1))
        for side in self.sides:
            names = [_hit_name(row) for _, row in side.hits.iterrows()]
            sims = [round(float(x), 3) for x in side.hits["similarity"]] if len(side.hits) else []
            columns[side.name] = names + [""] * (depth - len(names))
            columns[f"{side.name} similarity"] = sims + [None] * (depth - len(sims))
        return pd.DataFrame(columns)

    def shared_species(self) -> list[str]:
        """Species among every model's hits, in the first model's order."""
        if not self.sides:
            return []
        rest = [set(s.species()) for s in self.sides[1:]]
        return [n for n in self.sides[0].species() if all(n in r for r in rest)]

    def summary(self) -> list[str]:
        """One sentence per model and one on what they share, for people."""
        lines = []
        for side in self.sides:
            top = side.predictions[0] if side.predictions else None
            said = (f"predicts {top.name} ({top.score:.2f})" if top is not None and top.name
                    else f"gives no prediction ({side.note or 'no labels'})")
            first = _hit_name(side.hits.iloc[0]) if len(side.hits) else "nothing"
            lines.append(f"{side.name} {said}; its nearest image is {first}.")
        shared = self.shared_species()
        lines.append(f"{len(shared)} species appear in every model's top {min(len(s.hits) for s in self.sides)}"
                     + (f": {', '.join(shared[:5])}{'...' if len(shared) > 5 else ''}." if shared else "."))
        return lines


def compare(query: bytes | str, sides: Sequence[tuple[AtlasLike, Encoder]], request: SearchRequest | None = None,
            cache: EncodingCache | None = None, k: int = 3) -> Comparison:
    """Search each ``(atlas, its model's encoder)`` for ``query`` (a photo's bytes, or a text)
    with the same settings (``request``; its depth fitted to each atlas). A photo is encoded
    once per model (``cache``). Raises ``UploadError`` for a photo that cannot be read."""
    request = request or SearchRequest(top_n=10, fold=True)
    cache = cache or EncodingCache()
    image = load_upload(query) if isinstance(query, bytes) else None
    answers = []
    for atlas, encoder in sides:
        if image is not None:
            enc = cache.get_or_encode(query, atlas.model, lambda e=encoder: e.encode(image))
            vector, predictions, note = enc.embedding, enc.predict(Rank.SPECIES, k), getattr(enc, "note", "")
        else:
            vector, predictions, note = encoder.encode_text(query), [], "a text query"
        fitted = request.replace(nprobe=min(request.nprobe, atlas.nlist) if request.nprobe else None).for_atlas(atlas.nlist)
        answers.append(Side(atlas.model, fitted.run(atlas, vector, atlas.model), predictions, note))
    return Comparison(query if isinstance(query, str) else "a photo", answers)


def _hit_name(row: pd.Series) -> str:
    sci = scientific_name(row.get("genus"), row.get("species"))
    common = clean(row.get("common_name"))
    return " · ".join(n for n in (common, sci) if n) or "unnamed"
