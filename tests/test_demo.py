"""The demo atlas works offline and its held-out queries find their species."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bioclip_nb import Atlas
from bioclip_nb.commands.cli import main
from bioclip_nb.demo import build_synthetic, ensure_demo_atlas, species_table
from bioclip_nb.encoders import load_encoder
from bioclip_nb.images import load_upload
from bioclip_nb.layout import PIXEL_MODEL


def test_species_table_is_real_taxonomy():
    sp = species_table()
    assert len(sp) >= 200 and sp["kingdom"].nunique() >= 4
    assert not sp[["kingdom", "phylum", "order", "family", "genus", "species"]].isna().any().any()
    assert sp.duplicated(["genus", "species"]).sum() == 0
    # ray-finned fishes have no class, as in the Tree of Life
    assert sp.loc[sp["genus"] == "Perca", "class"].isna().all()
    fox = sp[(sp["genus"] == "Vulpes") & (sp["species"] == "vulpes")].iloc[0]
    assert (fox["family"], fox["order"], fox["class"], fox["common_name"]) == ("Canidae", "Carnivora", "Mammalia", "Red fox")


@pytest.mark.slow      # builds the 10,070-drawing demo atlas (about 2 minutes)
def test_demo_atlas_contents(demo_atlas):
    manifest = json.loads((demo_atlas / "atlas.json").read_text())
    assert manifest["model"] == PIXEL_MODEL and manifest["demo_version"] >= 1
    with Atlas.open(demo_atlas) as atlas:
        assert atlas.count >= 10_000 and atlas.nlist > 1
        counts = atlas.scope_counts()
        assert counts["all"] > counts["url"] > counts["inat"] > 0 and 0 < counts["training"] < counts["all"]
        rows = atlas.lookup(np.arange(0, atlas.count, 997))
    local = rows["url"].dropna()
    assert len(local) and all((demo_atlas / u[len("atlas:/"):]).is_file() for u in local)
    q = pd.read_csv(demo_atlas / "queries" / "index.csv")
    assert list(q.columns) == ["file", "kingdom", "phylum", "class", "order", "family", "genus", "species"]
    assert len(q) >= 50 and all((demo_atlas / "queries" / f).is_file() for f in q["file"])


@pytest.mark.slow      # builds the 10,070-drawing demo atlas (about 2 minutes)
def test_held_out_queries_find_their_species(demo_atlas):
    q = pd.read_csv(demo_atlas / "queries" / "index.csv")
    enc = load_encoder(PIXEL_MODEL)
    vectors = np.stack([enc.encode(load_upload(demo_atlas / "queries" / f)).embedding for f in q["file"]])
    with Atlas.open(demo_atlas) as atlas:
        top = atlas.search(vectors, top_n=1, nprobe=16).set_index("query").loc[range(len(q))]
    genus_ok = top["genus"].to_numpy() == q["genus"].to_numpy()
    species_ok = genus_ok & (top["species"].to_numpy() == q["species"].to_numpy())
    assert species_ok.mean() >= 0.80, species_ok.mean()
    assert genus_ok.mean() >= 0.90, genus_ok.mean()


@pytest.mark.slow      # builds the 10,070-drawing demo atlas (about 2 minutes)
def test_cli_search_on_demo_query(demo_atlas, capsys):
    q = pd.read_csv(demo_atlas / "queries" / "index.csv").iloc[0]
    code = main(["search", str(demo_atlas / "queries" / q["file"]), "--atlas", str(demo_atlas), "--top-n", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(json.loads(out)["searches"][0]["hits"]) == 5


@pytest.mark.slow      # builds the 10,070-drawing demo atlas (about 2 minutes)
def test_ensure_demo_reuses_a_built_demo(demo_atlas):
    before = (demo_atlas / "faiss" / "index.index").stat().st_mtime_ns
    assert ensure_demo_atlas(demo_atlas) == demo_atlas
    assert (demo_atlas / "faiss" / "index.index").stat().st_mtime_ns == before


@pytest.mark.slow      # builds a synthetic atlas (about 30 s)
def test_synthetic_atlas(tmp_path, capsys):
    code = main(["demo", "--synthetic", "12000", "--dir", str(tmp_path / "syn")])
    assert code == 0 and capsys.readouterr().out.strip() == str(tmp_path / "syn")
    with Atlas.open(tmp_path / "syn") as atlas:
        assert atlas.count == 12_000 and type(atlas.index).__name__ == "IndexIVFPQ"
        assert atlas.manifest.extra.get("synthetic") is True
    with pytest.raises(FileExistsError):
        build_synthetic(tmp_path / "syn", 100)
