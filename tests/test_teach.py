"""Lessons (#17): the exercises' checkers and the 2-D search-depth toy."""

from __future__ import annotations

import pandas as pd
import pytest

from bioclip_nb import teach, toy


def test_the_border_query_misses_at_depth_one_and_finds_at_the_depth_the_lesson_names():
    t = toy.make_toy()
    q = toy.border_query(t)
    shallow = toy.search(t, q, 1)
    assert not shallow.found_truth and t.region[shallow.truth] != t.region[shallow.best]
    assert toy.depth_needed(t, q) == 2                    # tutorial 02's worked answer names 2
    deep = toy.search(t, q, 2)
    assert deep.found_truth and t.region[deep.truth] in set(deep.scanned)
    assert toy.search(t, q, 12).found_truth               # every region: exact


@pytest.mark.parametrize(("exercise", "right", "wrong", "given"), [
    ("02-depth", 2, 1, {}),
    ("02-depth", 2, 5, {}),
    ("02-similarity", 0.82, 0.36, {"distance": 0.36}),
    ("02-recall", 8, 32, {"sweep": pd.DataFrame({"nprobe": [1, 2, 4, 8, 16, 32], "recall": [.3, .5, .8, .92, .97, 1]})}),
    ("00-reuse", 0, 1, {}),
    ("00-inat", 3, 2, {"hits": pd.DataFrame({"publisher": ["iNaturalist.org"] * 3})}),
    ("04-best", "b.jpg", "a.jpg", {"table": pd.DataFrame({"file": ["a.jpg", "b.jpg"], "top_similarity": [0.8, 0.9]})}),
    ("05-recall", "IVF64,PQ16", "Flat", {"table": pd.DataFrame({"index": ["Flat", "IVF64,PQ16"], "recall@10": [1.0, 0.4]})}),
    ("01-source", "gbif", "eol", {"hits": pd.DataFrame({"source_dataset": ["gbif", "gbif", "eol"]})}),
    ("01-share", 0.58, 0.88, {"counts": {"all": 234, "inat": 135.7, "training": 206}}),
    ("04-agree", 2, 3, {"table": pd.DataFrame({"top_hit": ["A a", "B b", "C c"], "consensus": ["A a", "B b", "D d"]})}),
    ("05-choice", "IVF64,PQ16", "Flat", {"table": pd.DataFrame({"index": ["Flat", "IVF64,PQ16"],
                                                                 "bytes per vector": [3072.0, 24.5]})}),
])
def test_each_checker_knows_a_right_and_a_wrong_answer(exercise, right, wrong, given):
    good, bad = teach.check(exercise, right, **given), teach.check(exercise, wrong, **given)
    assert good.ok and not bad.ok
    assert str(right) not in bad.message                 # feedback never gives the answer away
    assert bad._repr_markdown_().startswith("**Not yet.**")


def test_a_checker_says_what_it_needs():
    with pytest.raises(ValueError, match="distance"):
        teach.check("02-similarity", 0.5)
    with pytest.raises(ValueError, match="number"):
        teach.check("02-depth", "deep")
    with pytest.raises(KeyError, match="02-depth"):
        teach.check("99-nothing", 1)


def test_the_build_and_atlas_checkers(tmp_path):
    from types import SimpleNamespace
    assert teach.check("03-skipped", 1, result=SimpleNamespace(skipped=1)).ok
    assert not teach.check("03-skipped", 0, result=SimpleNamespace(skipped=1)).ok
    records = pd.DataFrame({"family": ["Paridae", "Paridae", "Amanitaceae"]})
    atlas = SimpleNamespace(count=3, lookup=lambda ids: records.iloc[list(ids)])
    assert teach.check("03-families", 2, atlas=atlas).ok and not teach.check("03-families", 3, atlas=atlas).ok
