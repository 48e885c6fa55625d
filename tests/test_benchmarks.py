"""The benchmark suite runs (``--smoke``: the smallest sizes) so its code never rots; its numbers are not checked here."""

from __future__ import annotations

import json

import pytest

from benchmarks import scale
from benchmarks.__main__ import SUITE, main


@pytest.mark.slow
@pytest.mark.timeout(2400)          # every section, each at its smallest: about 15 minutes on 2 cores
def test_smoke_benchmarks_write_the_report(tmp_path):
    assert main(["--smoke", "--out", str(tmp_path / "docs"), "--workdir", str(tmp_path / "work")]) == 0
    report = (tmp_path / "docs" / "benchmarks.md").read_text()
    data = json.loads((tmp_path / "docs" / "benchmarks.json").read_text())
    assert set(data["results"]) == {name for name, _ in SUITE} | {"extrapolation"}
    for heading in ("Search latency and recall", "Scoped search", "Opening the index", "Metadata lookup",
                    "Coarse quantizer", "Atlas map", "Gallery of 20", "Encoder", "What 234M vectors would cost",
                    f"The published shape at {scale.SMOKE_RECORDS:,} records", "Building the rehearsal atlas", "Taxon filters: full pages",
                    "The demo atlas is a smoke test",
                    "bioclip-nb search PHOTO", "Dashboard kernels after one search", "8 clients encoding",
                    "recall@10 against brute force", "Storing the full vectors", "Encoder runtimes",
                    "Writing the hit columns", "Re-ranked search at the real size"):
        assert heading in report
    assert all(r["full_ours"] == 1.0 for r in data["results"]["probing"]["rows"])     # scope-aware: always full
