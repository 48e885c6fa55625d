"""A small atlas for dashboard tests: drawn specimens, some images on a local host (one gone),
some kept in the atlas, and one record with a hostile common name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bioclip_nb.builder import build_atlas
from bioclip_nb.demo.art import draw, traits

#: Community data that would set window.__pwned (or open a dialog) if the page ever ran it.
HOSTILE = '<img src=x onerror="window.__pwned=1;alert(1)"><script>window.__pwned=2</script> beetle'
HOSTILE_PUBLISHER = '"><img src=x onerror="window.__pwned=3">'
HOSTILE_SOURCE_ID = '9" onmouseover="window.__pwned=4'
HOSTILE_URL = "javascript:window.__pwned=5"
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
    # Hostile values the builder would never write, as a published file might hold them.
    import duckdb
    con = duckdb.connect(str(out / "duckdb" / "metadata.duckdb"))
    con.execute("DROP INDEX idx_id; DROP INDEX idx_scope")
    con.execute("ALTER TABLE metadata ALTER publisher TYPE VARCHAR")
    con.execute("UPDATE metadata SET publisher = ?, source_id = ?, source_dataset = 'gbif', url_prefix_id = NULL, "
                "identifier_suffix = ? WHERE common_name = ? AND id % 2 = 0",
                [HOSTILE_PUBLISHER, HOSTILE_SOURCE_ID, HOSTILE_URL, HOSTILE])
    con.execute("CREATE INDEX idx_id ON metadata (id)")
    con.execute("CREATE INDEX idx_scope ON metadata (source_dataset, has_url, in_bioclip2_training)")
    con.close()
    return out


def query_file(root: Path, genus: str = "Vulpes") -> Path:
    sp = next(s for s in SPECIES if s[5] == genus)
    return root / "collection" / f"{sp[5]}_{sp[6]}_8.jpg"
