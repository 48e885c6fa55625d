"""The bioclip-nb command: info, search --vectors, download, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bioclip_nb.commands.cli import main
from bioclip_nb.testing.hfcache import put_in_hf_cache

CONTRACT = ["rank", "id", "distance", "similarity", "exact", "kingdom", "phylum", "class", "order", "family", "genus",
            "species", "common_name", "source_dataset", "source_id", "uuid", "publisher", "img_type", "basisOfRecord", "url",
            "occurrence_url", "has_url", "in_bioclip2_training", "cells_scanned"]
#: After the contract's fields: how many copies a hit stands for, then the search's provenance.
EXTRAS = ["copies", "software", "model", "atlas_fingerprint", "atlas_records", "nprobe", "scope", "taxon_filter",
          "duplicates_folded", "query_kind", "query_input", "query_sha256", "query_predicted", "prediction_within",
          "ranked_by", "searched_at"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info(capsys, published_atlas):
    code, out, err = run(capsys, "info", "--atlas", str(published_atlas.path))
    assert code == 0, err
    info = json.loads(out)
    assert info["count"] == 50_000 and info["dim"] == 768 and info["nlist"] == 128
    assert info["metric"] == "l2" and info["model"] == "hf-hub:imageomics/bioclip-2"
    assert set(info["scope_counts"]) == {"all", "url", "inat", "training"}


def test_search_vectors_inat_genus_json(capsys, published_atlas, tmp_path):
    rec = published_atlas.records
    inat = rec[(rec["publisher"] == "iNaturalist.org") & rec["url"].notna()]
    genus = inat["genus"].value_counts().index[5]
    member = inat.index[inat["genus"] == genus][0]
    q = tmp_path / "q.npy"
    np.save(q, published_atlas.vectors[member] * 3.0)  # not unit: the CLI normalises
    code, out, err = run(capsys, "search", "--vectors", str(q), "--atlas", str(published_atlas.path),
                         "--scope", "inat", "--taxon", f"genus={genus}", "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    assert list(body) == ["software", "searches"] and len(body["searches"]) == 1
    hits = body["searches"][0]["hits"]
    assert isinstance(hits, list) and len(hits) == 10
    assert list(hits[0]) == CONTRACT + EXTRAS[:1]
    assert list(body["searches"][0]["provenance"]) == EXTRAS[1:] + ["depth_note"]
    assert hits[0]["id"] == member
    assert all(h["genus"] == genus and h["publisher"] == "iNaturalist.org" and h["has_url"] for h in hits)
    assert all(h["url"].startswith("https://") for h in hits)


def test_search_several_vectors_gives_list_of_arrays(capsys, published_atlas, tmp_path):
    q = tmp_path / "q.npy"
    np.save(q, published_atlas.vectors[:3])
    code, out, _ = run(capsys, "search", "--vectors", str(q), "--atlas", str(published_atlas.path), "--top-n", "4")
    assert code == 0
    arrays = [s["hits"] for s in json.loads(out)["searches"]]
    assert [len(a) for a in arrays] == [4, 4, 4]
    assert [a[0]["id"] for a in arrays] == [0, 1, 2]


def test_search_csv_and_table_to_file(capsys, published_atlas, tmp_path):
    q = tmp_path / "q.npy"
    np.save(q, published_atlas.vectors[:2])
    out_csv = tmp_path / "hits.csv"
    code, out, _ = run(capsys, "search", "--vectors", str(q), "--atlas", str(published_atlas.path),
                       "--format", "csv", "--output", str(out_csv))
    assert code == 0 and out == ""
    df = pd.read_csv(out_csv)
    assert len(df) == 20 and {"query", "url", "occurrence_url"} <= set(df.columns)
    code, out, _ = run(capsys, "search", "--vectors", str(q), "--atlas", str(published_atlas.path), "--format", "table")
    assert code == 0 and out.count("10 hits (approximate: ranked by compressed PQ codes)") == 2 and "similarity" in out


@pytest.mark.parametrize("argv, message", [
    (["search", "--vectors", "q.npy", "--top-n", "5000"], "--top-n must be a whole number from 1 to 1000, got 5000"),
    (["search", "--vectors", "q.npy", "--scope", "some"], "invalid choice: 'some'"),
    (["search", "--vectors", "q.npy", "--taxon", "class"], "must look like RANK=NAME"),
    (["search", "--vectors", "q.npy", "--taxon", "tribe=Bombini"], "unknown rank 'tribe'"),
    (["search", "--vectors", "q.npy", "--nprobe", "zero"], "takes a whole number"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_usage_exits_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and err.count("\n") == 1


def test_nprobe_above_nlist_is_usage(capsys, published_atlas, tmp_path):
    q = tmp_path / "q.npy"
    np.save(q, published_atlas.vectors[0])
    code, _, err = run(capsys, "search", "--vectors", str(q), "--atlas", str(published_atlas.path), "--nprobe", "500")
    assert code == 2 and "--nprobe must be a whole number from 1 to 128" in err


def test_two_query_kinds_is_usage(capsys, published_atlas, tmp_path):
    code, _, err = run(capsys, "search", "--text", "fox", "--vectors", "q.npy", "--atlas", str(published_atlas.path))
    assert code == 2 and "exactly one of" in err


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    (np.zeros((2, 5), np.float32), "shape (768,) or (n, 768)"),
    (np.array(["a", "b"]), "numeric"),
])
def test_bad_vectors_file_fails_with_1(capsys, published_atlas, tmp_path, content, message):
    q = tmp_path / "q.npy"
    if content is not None:
        np.save(q, content)
    code, out, err = run(capsys, "search", "--vectors", str(q), "--atlas", str(published_atlas.path))
    assert code == 1 and out == "" and message in err and "Traceback" not in err


def test_missing_atlas_fails_with_1(capsys, tmp_path):
    code, _, err = run(capsys, "info", "--atlas", str(tmp_path / "none"))
    assert code == 1 and "atlas directory not found" in err


def test_console_script_exit_codes_and_no_traceback(tmp_path):
    exe = [sys.executable, "-m", "bioclip_nb.commands.cli"]
    bad = subprocess.run([*exe, "info", "--atlas", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    debug = subprocess.run([*exe, "info", "--debug", "--atlas", str(tmp_path / "x")], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    usage = subprocess.run([*exe, "search", "--top-n", "0"], capture_output=True, text=True)
    assert usage.returncode == 2
    helped = subprocess.run([*exe, "search", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--taxon RANK=NAME" in helped.stdout


def test_download_links_from_prefilled_hf_cache(capsys, published_atlas, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    put_in_hf_cache(cache, "imageomics/bioclip-image-search-lite", {
        "faiss/index.index": published_atlas.path / "faiss/index.index",
        "duckdb/metadata.duckdb": published_atlas.path / "duckdb/metadata.duckdb",
    })
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    dest = tmp_path / "data"
    code, out, err = run(capsys, "download", "--dir", str(dest))
    assert code == 0, err
    assert out.strip() == str(dest)
    code, out, _ = run(capsys, "info", "--atlas", str(dest))
    assert code == 0 and json.loads(out)["count"] == 50_000
    # running again is a no-op (resumable / idempotent)
    assert run(capsys, "download", "--dir", str(dest))[0] == 0


def test_download_offline_without_cache_says_what_to_do(capsys, tmp_path, monkeypatch):
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    code, _, err = run(capsys, "download", "--dir", str(tmp_path / "data"))
    assert code == 1 and "cannot be downloaded" in err and "--atlas" in err
