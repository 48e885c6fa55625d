"""`bioclip-nb prepare`: derived data computed once, read by everybody, never in a constructor."""

from __future__ import annotations

import json

import pytest
from helpers.atlases import build_synthetic_atlas

from bioclip_nb import Atlas
from bioclip_nb.commands.cli import main
from bioclip_nb.config import Settings


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return build_synthetic_atlas(tmp_path_factory.mktemp("prep") / "atlas", 12_000, "IVF64,PQ16")


def test_prepare_into_a_shared_directory_then_nobody_scans(small, tmp_path, capsys, monkeypatch):
    shared = tmp_path / "shared"
    code = main(["prepare", "--atlas", str(small.path), "--derived-dir", str(shared), "--no-map"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and set(out["seconds"]) >= {"scope counts", "bitmap and cell counts: inat"}
    with Atlas.open(small.path, settings=Settings(home=tmp_path / "x")) as probe:
        fingerprint = probe.fingerprint
    files = {p.name for p in (shared / fingerprint).iterdir()}
    assert {"validated.json", "scope_counts.json", "scope-inat.npy", "scope-url.npy"} <= files
    assert sum(n.startswith("cells-") for n in files) == 3
    for p in (shared / fingerprint).iterdir():
        p.chmod(0o444)                                     # an admin makes it read-only

    # A user with an empty home: nothing is computed from the table any more.
    user = Settings(home=tmp_path / "user", derived=shared)
    from bioclip_nb.core.metadata import MetadataStore

    def no_scans(*a, **k):
        raise AssertionError("a scan of the table")

    monkeypatch.setattr(MetadataStore, "scope_counts", no_scans)
    monkeypatch.setattr(MetadataStore, "scope_ids", no_scans)
    monkeypatch.setattr(MetadataStore, "count", no_scans)
    with Atlas.open(small.path, settings=user) as atlas:      # the validation record is shared
        assert atlas.scope_counts(compute=False)["all"] == 12_000
        hits = atlas.search(small.vectors[0], top_n=5, nprobe=4, scope="inat")
        assert len(hits) == 5
    assert not (tmp_path / "user" / "cache" / fingerprint / "scope-inat.npy").exists()


def test_no_hit_columns_leaves_them_out_and_searches_read_duckdb(small, tmp_path, capsys):
    from bioclip_nb.core import hitcolumns
    shared = tmp_path / "lean"
    code = main(["prepare", "--atlas", str(small.path), "--derived-dir", str(shared), "--no-map", "--no-hit-columns"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and "hit columns" not in out["seconds"] and "scope counts" in out["seconds"]
    assert not list(shared.rglob(hitcolumns.DIRECTORY))
    with Atlas.open(small.path, settings=Settings(home=tmp_path / "user", derived=shared)) as atlas:
        assert atlas.metadata.hit_columns is None and not atlas.info()["hit_columns"]
        assert len(atlas.search(small.vectors[0], top_n=5, nprobe=4)) == 5


def test_the_dashboard_never_counts_in_its_constructor(small, tmp_path, monkeypatch):
    from bioclip_nb.core.metadata import MetadataStore
    from bioclip_nb.dashboard import Dashboard
    calls = []
    real = MetadataStore.scope_counts
    monkeypatch.setattr(MetadataStore, "scope_counts", lambda self: calls.append(1) or real(self))
    d = Dashboard.from_settings(atlas=small.path, settings=Settings(home=tmp_path / "fresh"))
    d.widget                                           # built: the menu shows labels without counts
    d.wait()                                           # counted once, in the background
    assert len(calls) == 1 and "(12,000)" in d.controls.scope.options[0][0]
    d2 = Dashboard.from_settings(atlas=small.path, settings=Settings(home=tmp_path / "fresh"))
    d2.widget
    d2.wait()
    assert len(calls) == 1 and "(12,000)" in d2.controls.scope.options[0][0]     # kept


def test_prepare_says_what_it_needs(tmp_path, capsys):
    code = main(["prepare", "--atlas", str(tmp_path / "nothing")])
    assert code == 1 and "atlas directory not found" in capsys.readouterr().err
