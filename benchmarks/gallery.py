"""A 20-image gallery from a local host with 150 ms latency: ours against a plain baseline.

The host serves ~2 MB originals and ~200 KB ``medium`` variants (iNaturalist's layout).
Baseline: the originals, 8 threads, no cache, downscaled after download. Ours: the
``ImageFetcher`` (medium variants, per-host policy, disk cache), cold then warm.
"""

from __future__ import annotations

import io
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

from bioclip_nb.images import ImageFetcher, open_image_cache
from bioclip_nb.testing.imagehost import ImageHost

from .common import table

HOST = "inaturalist-open-data.s3.amazonaws.com"


def _baseline(base: str, n: int) -> tuple[float, int]:
    session = requests.Session()

    def one(i):
        body = session.get(f"{base}/photos/{i}/original.jpg", timeout=10).content
        img = Image.open(io.BytesIO(body))
        img.thumbnail((256, 256))
        return len(body)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        nbytes = sum(pool.map(one, range(n)))
    return time.perf_counter() - t0, nbytes


def _ours(fetcher: ImageFetcher, n: int) -> tuple[float, int, int]:
    urls = [(i, f"https://{HOST}/photos/{i}/original.jpg") for i in range(n)]
    t0 = time.perf_counter()
    results = list(fetcher.fetch_many(urls))
    elapsed = time.perf_counter() - t0
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]
    return elapsed, sum(r.nbytes for r in results), sum(not r.from_cache for r in results)


def run(quick: bool = False) -> dict:
    n = 20
    with ImageHost(latency=0.15, original_bytes=2_000_000, medium_bytes=200_000) as host, \
            tempfile.TemporaryDirectory() as tmp:
        for i in range(n):   # render the pictures before timing
            host.bytes_for("original", i), host.bytes_for("medium", i)
        orig_kb = sum(len(host.bytes_for("original", i)) for i in range(n)) / n / 1024
        med_kb = sum(len(host.bytes_for("medium", i)) for i in range(n)) / n / 1024
        base_s, base_b = _baseline(host.base, n)
        base2_s, base2_b = _baseline(host.base, n)
        fetcher = ImageFetcher.isolated(cache=open_image_cache(Path(tmp) / "cache"), resolve={HOST: host.base})
        cold_s, cold_b, cold_req = _ours(fetcher, n)
        warm_s, warm_b, warm_req = _ours(fetcher, n)
        fetcher.close()
    rows = [
        ["baseline (originals, 8 threads, no cache), 1st", base_s, base_b / 2**20, n],
        ["baseline, 2nd (same again)", base2_s, base2_b / 2**20, n],
        ["ours cold (medium variants, policy, cache)", cold_s, cold_b / 2**20, cold_req],
        ["ours warm (disk cache)", warm_s, warm_b / 2**20, warm_req],
    ]
    md = table(["gallery of 20", "seconds", "MB transferred", "requests"], rows)
    return {"name": "gallery", "title": f"Gallery of {n} results, 150 ms host latency, originals "
            f"{orig_kb:.0f} KB, medium {med_kb:.0f} KB", "markdown": md,
            "rows": [dict(zip(["case", "seconds", "mb", "requests"], r)) for r in rows]}


if __name__ == "__main__":
    out = run()
    print(out["title"])
    print(out["markdown"])
