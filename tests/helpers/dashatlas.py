"""A small atlas for dashboard tests: drawn specimens, some images on a local host (one gone),
some kept in the atlas, and one record with a hostile common name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bioclip_nb.builder import build_atlas
from bioclip_nb.demo.art import draw, traits

HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=alert(1)> beetle"
SPECIES = [
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Parus", "major", "Great tit"),
    ("Animalia", "Chordata", "Mammalia", "Carnivora", "Canidae", "Vulpes", "vulpes", "Red fox"),
    ("Animalia", "Arthropoda", "Insecta", "Coleoptera", "Carabidae", "Carabus", "violaceus", HOSTILE),
    ("Fungi", "Basidiomycota", "Agaricomycetes", "Agaricales", "Amanitaceae", "Amanita", "muscaria", "Fly agaric"),
    ("Animalia", "Chordata", None, "Perciformes", "Percidae", "Perca", "fluviatilis", "European perch"),
]
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")


def draw_collection(folder: Path, host_base: str, per_species: int = 8) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, sp in enumerate(SPECIES):
        rng = np.random.default_rng(100 + k)
        lineage = dict(zip(RANKS, sp[:7]))
        for j in range(per_species + 1):
            name = f"{sp[5]}_{sp[6]}_{j}.jpg"
            draw(traits(lineage), rng).save(folder / name, quality=90)
            if j == per_species:
                continue   # held out as a query
            n = len(rows)
            url = None
            if n % 4 == 1:
                url = f"{host_base}/img/{n}.jpg"
            elif n == 6:
                url = f"{host_base}/404/{n}.jpg"
            rows.append({"file": name, **lineage, "common_name": sp[7], "url": url,
                         "source_dataset": "gbif" if n % 2 else "eol", "source_id": str(1000 + n),
                         "publisher": "iNaturalist.org" if n % 3 == 0 else "Naturalis Biodiversity Center"})
    table = pd.DataFrame(rows)
    table.to_csv(folder / "metadata.csv", index=False)
    return table


def build_dash_atlas(root: Path, host_base: str, model: str) -> Path:
    src = root / "collection"
    if not (src / "metadata.csv").is_file():
        draw_collection(src, host_base)
    out = root / f"atlas-{model.replace('/', '_').replace(':', '_')}"
    build_atlas(src, out, model=model, progress=False, batch_size=64)
    return out


def query_file(root: Path, genus: str = "Vulpes") -> Path:
    sp = next(s for s in SPECIES if s[5] == genus)
    return root / "collection" / f"{sp[5]}_{sp[6]}_8.jpg"
