"""What 234 million vectors would cost: the measured per-code and per-centroid costs scaled to
the published index (IVF65536,PQ16, 234,391,308 vectors), beside the physical floor."""

from __future__ import annotations

from .common import table

N_PUBLISHED = 234_391_308
NLIST = 65_536
CODE_BYTES = 16
MEMORY_BW = 10e9          # bytes/s: a conservative figure for one socket's streaming bandwidth


def run(results: dict) -> dict:
    search = results.get("search")
    quant = results.get("quantizer")
    lookup = results.get("lookup")
    rows: list[list] = []
    per_list = N_PUBLISHED / NLIST
    ns_code = None
    if search:
        deep = max(search["rows"], key=lambda r: r["codes"])
        ns_code = 1e6 * deep["raw_ms"] / max(deep["codes"], 1)
    flat_ms = hnsw_ms = None
    if quant:
        flat = quant["rows"][0]
        scale = NLIST / quant["nlist"]
        flat_ms = flat["ms_one"] * scale
        hnsw = next((r for r in quant["rows"] if "128" in str(r["quantizer"])), None)
        hnsw_ms = hnsw["ms_one"] if hnsw and quant["nlist"] == NLIST else None
    for nprobe in (1, 16, 64, 256):
        codes = nprobe * per_list
        scan_ms = codes * ns_code / 1e6 if ns_code else None
        floor_ms = codes * CODE_BYTES / MEMORY_BW * 1000
        rows.append([nprobe, int(codes), codes * CODE_BYTES / 2**20, scan_ms if scan_ms is not None else "-",
                     floor_ms, flat_ms if flat_ms is not None else "-", hnsw_ms if hnsw_ms is not None else "-"])
    md = table(["nprobe", "codes scanned", "MB of PQ codes read", "scan ms (measured ns/code x codes)",
                "floor ms (bytes at 10 GB/s)", "coarse quantizer ms (flat, 65,536 centroids)",
                "coarse quantizer ms (HNSW sidecar, efSearch 128)"], rows)
    centroid_flops = 2 * NLIST * 768
    notes = [f"Per list: {per_list:,.0f} vectors on average; the centroid search is {centroid_flops / 1e6:.0f} MFLOP per query."]
    if ns_code:
        notes.append(f"Measured scan cost: {ns_code:.2f} ns per code at the deepest setting of the synthetic run.")
    if lookup:
        notes.append("Metadata lookups are answered by the idx_id index, so their cost does not scale with the table; "
                     "they are measured at 234M rows by the rehearsal (`python -m benchmarks.scale`), not extrapolated.")
    return {"name": "extrapolation", "title": "What 234M vectors would cost", "markdown": md + "\n\n" + "\n".join(f"- {n}" for n in notes),
            "rows": [dict(zip(["nprobe", "codes", "mb", "scan_ms", "floor_ms", "quantizer_ms", "hnsw_ms"], r)) for r in rows]}
