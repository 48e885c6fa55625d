"""``SearchRequest``: the one object every face builds a search from, its defaults and ranges."""

from __future__ import annotations

import pytest

from bioclip_nb import limits
from bioclip_nb.request import SearchRequest


def test_defaults_come_from_limits_and_the_depth_from_the_atlas():
    req = SearchRequest()
    assert (req.top_n, req.nprobe, req.scope, req.taxon, req.fold, req.exact) == (limits.DEFAULT_TOP_N, None, "all", {},
                                                                                   False, None)
    assert req.for_atlas(4).nprobe == 4                      # a small atlas: every cell
    assert req.for_atlas(65_536).nprobe == limits.DEFAULT_NPROBE
    assert req.for_atlas(1).nprobe == 1                      # flat
    assert SearchRequest(nprobe=40).for_atlas(65_536).nprobe == 40


def test_values_are_normalised_as_people_write_them():
    req = SearchRequest(scope=" INat ", taxon=["Genus=Vulpes", "class= Mammalia"])
    assert req.scope == "inat" and req.taxon == {"genus": "Vulpes", "class": "Mammalia"}
    assert req.search_args()["taxon"] == {"genus": "Vulpes", "class": "Mammalia"}
    assert SearchRequest().search_args()["taxon"] is None


@pytest.mark.parametrize(("bad", "words"), [
    ({"top_n": 0}, "top_n must be a whole number from 1 to 1000"),
    ({"top_n": 1001}, "top_n must be a whole number from 1 to 1000"),
    ({"top_n": 2.5}, "top_n must be a whole number"),
    ({"top_n": True}, "top_n must be a whole number"),
    ({"nprobe": 0}, "nprobe must be a whole number from 1"),
    ({"nprobe": limits.MAX_NPROBE + 1}, "nprobe must be a whole number"),
    ({"scope": "everywhere"}, "unknown scope 'everywhere'"),
    ({"taxon": {"tribe": "Vulpini"}}, "unknown rank 'tribe'"),
    ({"taxon": ["genus"]}, "must look like RANK=NAME"),
    ({"fold": "yes"}, "fold must be true or false"),
    ({"exact": "maybe"}, "exact must be true, false or unset"),
])
def test_out_of_range_is_refused_with_the_range(bad, words):
    with pytest.raises(ValueError, match=words):
        SearchRequest(**bad)


def test_the_atlas_bounds_the_depth():
    with pytest.raises(ValueError, match=r"from 1 to 256 \(this atlas has 256 cells\), got 300"):
        SearchRequest(nprobe=300).for_atlas(256)
    assert SearchRequest(nprobe=300).depth(1) == 300         # a flat index has no cells to run out of


def test_replace_checks_again_and_json_round_trips():
    req = SearchRequest(top_n=20, taxon={"genus": "Vulpes"}, exact=False)
    assert req.replace(top_n=5).top_n == 5 and req.top_n == 20
    with pytest.raises(ValueError):
        req.replace(top_n=0)
    assert SearchRequest.from_json(req.to_json()) == req
    assert SearchRequest.from_json({"top_n": 3, "taxon": None}) == SearchRequest(top_n=3)
    with pytest.raises(ValueError, match="unknown search settings: colour"):
        SearchRequest.from_json({"colour": "red"})


def test_run_searches_with_the_request(published_atlas):
    from bioclip_nb import Atlas
    with Atlas.open(published_atlas.path) as atlas:
        q = published_atlas.vectors[3]
        hits = SearchRequest(top_n=5, nprobe=3).run(atlas, q)
        assert hits["id"].tolist() == atlas.search(q, top_n=5, nprobe=3)["id"].tolist() and len(hits) == 5
        assert set(hits["cells_scanned"]) == {3}
        assert set(SearchRequest(top_n=5).run(atlas, q)["cells_scanned"]) == {limits.default_nprobe(atlas.nlist)}


def test_for_nlist_names_the_atlas_range_first():
    with pytest.raises(ValueError, match=r"from 1 to 128 \(this atlas has 128 cells\), got 0"):
        SearchRequest.for_nlist(128, nprobe=0)
    assert SearchRequest.for_nlist(128, top_n=4) == SearchRequest(top_n=4, nprobe=limits.DEFAULT_NPROBE)
