"""The export formats are one registry: the CLI's choices and the dashboard's buttons read it,
and every format carries the search's provenance."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from bioclip_nb.outputs import formats
from bioclip_nb.outputs.formats import ExportFormat, Searches
from bioclip_nb.outputs.provenance import Provenance


def _page(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"rank": range(1, n + 1), "id": range(start, start + n), "similarity": [0.9 - i / 100 for i in range(n)],
                         "exact": [True] * n, "genus": ["Vulpes"] * n, "species": ["vulpes"] * n, "url": [None] * n})


def _prov(query: str) -> Provenance:
    return Provenance(model="m", atlas_fingerprint="f" * 16, atlas_records=100, nprobe=4, scope="all", taxon_filter="",
                      folded=True, query_kind="text", query=query)


def test_json_has_one_shape_with_provenance_for_one_or_many():
    one = json.loads(formats.write_searches("json", Searches.one(_page(3), _prov("fox"))))
    many = json.loads(formats.write_searches("json", Searches([_page(2), _page(2, 10)], [_prov("a"), _prov("b")], ["A", "B"])))
    for body in (one, many):
        assert list(body) == ["software", "searches"] and body["software"].startswith("bioclip-nb ")
        for search in body["searches"]:
            assert list(search) == ["label", "provenance", "hits"]
            assert search["provenance"]["ranked_by"] == "full vectors" and search["provenance"]["nprobe"] == 4
            assert "model" not in search["hits"][0]           # provenance once per search, not per hit
    assert [s["label"] for s in many["searches"]] == ["A", "B"] and one["searches"][0]["label"] == "fox"
    assert [h["id"] for h in many["searches"][1]["hits"]] == [10, 11]


def test_csv_stamps_every_row_and_numbers_the_queries():
    out = pd.read_csv(io.BytesIO(formats.write_searches("csv", Searches([_page(2), _page(3, 5)], [_prov("a"), _prov("b")]))))
    assert out["query"].tolist() == [0, 0, 1, 1, 1] and out["query_input"].tolist() == ["a", "a", "b", "b", "b"]
    single = pd.read_csv(io.BytesIO(formats.write_searches("csv", Searches.one(_page(2), _prov("a")))))
    assert "query" not in single and set(single["model"]) == {"m"}


def test_a_photo_format_refuses_hits_and_a_hit_format_refuses_photos():
    with pytest.raises(ValueError, match="describes photos"):
        formats.write_searches("summary", Searches.one(_page(1), _prov("a")))
    with pytest.raises(ValueError, match="writes hits, not one row per photo"):
        formats.write_photos("csv", formats.PhotoBatch([], _prov("a"), "m"))
    with pytest.raises(ValueError, match="unknown format 'xml': use one of json, table, csv"):
        formats.get("xml")


def test_a_new_format_is_one_line_in_the_registry(monkeypatch, demo_atlas, tmp_path):
    """What docs/architecture.md promises: a function and one ``ExportFormat`` line give a
    ``--format`` choice and an Export tab button, and both write with it."""
    import numpy as np

    from bioclip_nb.commands.cli import main
    from bioclip_nb.config import Settings
    from bioclip_nb.dashboard import Dashboard

    def ids_only(s: Searches) -> bytes:
        return "\n".join(str(i) for i in s.stacked()["id"]).encode()

    extra = ExportFormat("ids", "ids", "bioclip-nb-ids", ".txt", "text/plain", "record ids, one per line", searches=ids_only)
    monkeypatch.setattr(formats, "FORMATS", (*formats.FORMATS, extra))
    monkeypatch.setitem(formats.BY_KEY, "ids", extra)
    np.save(tmp_path / "q.npy", np.load(demo_atlas / "vectors.npy")[4])
    out = tmp_path / "ids.txt"
    assert main(["search", "--vectors", str(tmp_path / "q.npy"), "--atlas", str(demo_atlas), "--local", "--format", "ids",
                 "--top-n", "3", "--output", str(out)]) == 0
    assert out.read_text().split("\n")[0] == "4" and len(out.read_text().split("\n")) == 3
    d = Dashboard.from_settings(atlas=demo_atlas, settings=Settings(home=tmp_path / "home"))
    d.widget
    tab = d.tabs["export"]
    assert "ids" in tab.buttons
    d.session.use_record(4)
    d.session.search()
    tab.buttons["ids"].click()
    assert 'download="bioclip-nb-ids.txt"' in tab.links.value
