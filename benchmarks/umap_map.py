"""How long the atlas map's UMAP layout takes for a given number of IVF centroids."""

from __future__ import annotations

import time

from bioclip_nb.demo import synthetic
from bioclip_nb.insight.explore import layout_2d

from .common import table


def run(quick: bool = False, workdir=None) -> dict:
    sizes = (512, 1024) if quick else (4096, 16_384, 65_536)
    tax = synthetic.make_taxonomy(seed=4)
    # numba compiles UMAP's exact (small) and NN-descent (>= 4096 points) paths on first use: not counted
    for warm in ((256,) if quick else (256, 4200)):
        layout_2d(synthetic.make_vectors(tax, warm, seed=4)[0])
    rows = []
    for n in sizes:
        cents, _ = synthetic.make_vectors(tax, n, seed=5)
        t0 = time.perf_counter()
        layout_2d(cents)
        rows.append([n, time.perf_counter() - t0])
    return {"name": "umap", "title": "Atlas map: UMAP (cosine, 15 neighbours) of IVF centroids, 768-d, 1 thread",
            "markdown": table(["centroids", "seconds"], rows), "rows": [{"centroids": r[0], "seconds": r[1]} for r in rows]}


if __name__ == "__main__":
    print(run()["markdown"])
