"""The warm server against a process per search, with BioCLIP 2's compute (ViT-L/14, random weights).

Three measurements, baseline and ours in the same run, on the rehearsal atlas of the published
shape (234,391,308 records, 65,536 cells; the quick run uses the small rehearsal and ViT-B/32):

1. ``bioclip-nb search PHOTO`` N times in a row: ``--local`` (every run loads the model and
   opens the atlas) against the server (the first run starts it; the rest find it warm).
2. Four dashboard kernels: each with its own model against four through one server (resident
   memory per kernel after one search, and in total with the server).
3. Concurrent encodes (8 clients at once): the server with batching off against on.

The model is installed in a private Hugging Face cache under the real model id, with 200,000
random Tree of Life labels, so every path is the one a real BioCLIP 2 takes.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bioclip_nb.layout import BIOCLIP2

from . import scale
from .common import smoke, table

KERNEL = r"""
import json, os, sys, time, psutil
from pathlib import Path
from bioclip_nb.config import Settings
from bioclip_nb.dashboard import Dashboard
atlas, home, server, photo = sys.argv[1:5]
t0 = time.perf_counter()
d = Dashboard.from_settings(atlas=atlas, settings=Settings(home=Path(home), server=server or None), device="cpu")
d.widget
d.upload_bytes(Path(photo).read_bytes(), "photo.jpg")
d.search(); d.wait(600)
assert d.session.hits is not None and len(d.session.hits), d.status.value
print(json.dumps({"rss_mb": psutil.Process().memory_info().rss / 2**20, "seconds": time.perf_counter() - t0}))
"""


def install_model(cache: Path, arch: str, n_labels: int) -> None:
    """open_clip's ``arch`` with random weights as ``imageomics/bioclip-2``, and random labels."""
    done = cache / f".installed-{arch}-{n_labels}"
    if done.is_file():
        return
    import open_clip
    import torch

    from bioclip_nb.testing.hfcache import put_in_hf_cache
    torch.manual_seed(0)
    cache.mkdir(parents=True, exist_ok=True)
    cfg = dict(open_clip.get_model_config(arch), embed_dim=768)       # BioCLIP 2's width (ViT-L/14's own)
    if smoke():                                                        # two narrow layers: the same code, seconds not minutes
        cfg["vision_cfg"] = dict(cfg["vision_cfg"], layers=2, width=64, head_width=32)
        cfg["text_cfg"] = dict(cfg["text_cfg"], layers=2, width=64, heads=2)
    model = open_clip.CLIP(**cfg)
    weights = cache.parent / f"{arch}.bin"
    torch.save(model.state_dict(), weights)
    dim = model.visual.output_dim
    config = {"model_cfg": cfg,
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}
    put_in_hf_cache(cache, BIOCLIP2.removeprefix("hf-hub:"), {"open_clip_config.json": json.dumps(config).encode(),
                                      "open_clip_pytorch_model.bin": weights})
    weights.unlink()
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(dim, n_labels)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=0)
    names = [[["Animalia", f"P{i % 40}", f"C{i % 300}", f"O{i % 1500}", f"F{i % 6000}", f"G{i % 30000}", f"s{i}"], ""]
             for i in range(n_labels)]
    buf = io.BytesIO()
    np.save(buf, emb)
    put_in_hf_cache(cache, "imageomics/TreeOfLife-200M", {"embeddings/txt_emb_species.npy": buf.getvalue(),
                                                          "embeddings/txt_emb_species.json": json.dumps(names).encode()},
                    repo_type="dataset")
    done.write_text("ok")


def photos(folder: Path, n: int) -> list[Path]:
    """``n`` distinct photos (so no search is answered from the encoding cache)."""
    from bioclip_nb.testing.imagehost import picture
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"photo-{i}.jpg"
        if not path.is_file():
            path.write_bytes(picture(1000 + i, size=(800, 600), noise=True))
        out.append(path)
    return out


def _env(hf: Path, home: Path, **extra: str) -> dict:
    # torch's eager encoder unless a row asks for ``auto``: a server on ``auto`` with nothing
    # prepared would export and check a faster runtime in the background while it is being
    # timed. The runtimes are compared on their own in benchmarks/runtime.py.
    return {**os.environ, "HF_HUB_CACHE": str(hf), "HF_HUB_OFFLINE": "1", "BIOCLIP_NB_HOME": str(home),
            "BIOCLIP_NB_RUNTIME": "torch", **extra}


def _cli(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bioclip_nb.commands.cli", *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return time.perf_counter() - t0


def cli_searches(atlas: Path, hf: Path, work: Path, n: int) -> tuple[list[list], dict]:
    pics = photos(work / "photos", n)
    home = work / "cli-home"
    env = _env(hf, home, BIOCLIP_NB_AUTOSTART="1")
    local = [_cli(["search", str(p), "--atlas", str(atlas), "--local", "--device", "cpu"], env) for p in pics]
    served = [_cli(["search", str(p), "--atlas", str(atlas), "--device", "cpu"], env) for p in pics]
    _cli(["stop"], env)
    # the same server on the fastest runtime this CPU verified, exported ahead as `prepare --runtime` does
    fast_env = _env(hf, work / "fast-home", BIOCLIP_NB_AUTOSTART="1", BIOCLIP_NB_RUNTIME="auto")
    prepared = subprocess.run([sys.executable, "-c", "import sys, json; from pathlib import Path; "
                               "from bioclip_nb.commands.prepare import prepare_runtime; from bioclip_nb.config import Settings; "
                               f"print(json.dumps(prepare_runtime({BIOCLIP2!r}, Settings.from_env().cache_dir)))"],
                              env=fast_env, capture_output=True, text=True)
    if prepared.returncode != 0:
        raise RuntimeError(prepared.stderr[-2000:])
    chosen = json.loads(prepared.stdout.strip().splitlines()[-1]).get("chosen", "?")
    fast = [_cli(["search", str(p), "--atlas", str(atlas), "--device", "cpu"], fast_env) for p in pics]
    _cli(["stop"], fast_env)
    rows = [["in-process (--local): every search loads the model", local[0], statistics.median(local[1:]), sum(local)],
            ["server: the first starts it, the rest find it warm", served[0], statistics.median(served[1:]), sum(served)],
            [f"server on the runtime this CPU verified ({chosen}; prepared ahead)", fast[0], statistics.median(fast[1:]),
             sum(fast)]]
    return rows, {"local": local, "served": served, "fast": fast, "fast_runtime": chosen}


def _kernel(atlas: Path, home: Path, server: str, photo: Path, hf: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", KERNEL, str(atlas), str(home), server, str(photo)],
                         env=_env(hf, home), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _start_server(atlas: Path, hf: Path, home: Path, *extra: str) -> tuple[subprocess.Popen, object]:
    from bioclip_nb.service.client import Client
    from bioclip_nb.service.statefile import read_record
    proc = subprocess.Popen([sys.executable, "-m", "bioclip_nb.commands.cli", "serve", "--atlas", str(atlas), "--port", "0",
                             "--device", "cpu", "--idle-minutes", "0", *extra], env=_env(hf, home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        record = read_record(home)
        if record is not None and record.pid == proc.pid and Client(record.url, record.token).health()["encoder"] != "loading":
            return proc, record
        if proc.poll() is not None:
            raise RuntimeError("the server did not start")
        time.sleep(0.5)


def _rss_mb(pid: int) -> float:
    import psutil
    return psutil.Process(pid).memory_info().rss / 2**20


def kernels(atlas: Path, hf: Path, work: Path, n: int = 4) -> list[list]:
    pics = photos(work / "photos", n)
    local = [_kernel(atlas, work / f"kernel-{i}", "", pics[i], hf)["rss_mb"] for i in range(n)]
    proc, record = _start_server(atlas, hf, work / "server-home")
    try:
        served = [_kernel(atlas, work / "server-home", record.url, pics[i], hf)["rss_mb"] for i in range(n)]
        server_mb = _rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    rows = [[f"{n} kernels, each with its own model and atlas", max(local), sum(local), 0.0, sum(local)],
            [f"{n} kernels through one server", max(served), sum(served), server_mb, sum(served) + server_mb]]
    return [[label, *(round(v) for v in values)] for label, *values in rows]


def _encode_all(record, barrier: threading.Barrier, pictures: list[bytes]) -> None:
    from bioclip_nb.service.client import Client
    client = Client(record.url, record.token)
    barrier.wait()
    for data in pictures:
        client.encode(data)


def throughput(atlas: Path, hf: Path, work: Path, clients: int = 8, each: int = 3) -> list[list]:
    from bioclip_nb.service.client import Client
    pics = [p.read_bytes() for p in photos(work / "photos", clients * each)]
    rows = []
    for label, ms in (("one forward pass per request (--batch-ms 0)", "0"), ("batched within 5 ms (the default on a GPU)", "5")):
        proc, record = _start_server(atlas, hf, work / f"batch-home-{ms}", "--batch-ms", ms)
        try:
            barrier = threading.Barrier(clients)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(lambda k, r=record, b=barrier: _encode_all(r, b, pics[k * each:(k + 1) * each]), range(clients)))
            seconds = time.perf_counter() - t0
            b = Client(record.url, record.token).health()["batches"]
        finally:
            proc.terminate()
            proc.wait(30)
        rows.append([label, clients * each / seconds, b["passes"], b["largest"]])
    return rows


def run(quick: bool = False, workdir: Path | None = None) -> dict:
    arch, n_labels, n, n_kernels = ("ViT-B-32", 20_000, 3, 2) if quick else ("ViT-L-14", 200_000, 20, 4)
    if smoke():
        n_labels, n, n_kernels = 2_000, 2, 1
    work = (workdir or Path(tempfile.mkdtemp(prefix="bioclip-service-"))) / "service"
    hf = work / f"hf-{arch}"
    install_model(hf, arch, n_labels)
    records = scale.quick_records() if quick else scale.PUBLISHED_RECORDS
    atlas = (workdir / f"rehearsal-{records}") if (quick and workdir) else scale.default_dir(records)
    scale.build(atlas, records)
    cli_rows, raw = cli_searches(atlas, hf, work, n)
    parts = [
        (f"{n} `bioclip-nb search PHOTO` in a row (seconds; a new photo each time)", table(
            ["method", "first s", "median of the rest s", "total s"], cli_rows)),
        (f"Dashboard kernels after one search each, {n_kernels} of them (resident MB)", table(
            ["setup", "largest kernel MB", "kernels MB", "server MB", "total MB"], kernels(atlas, hf, work, n_kernels))),
        ("8 clients encoding 3 photos each at once", table(
            ["server", "photos / s", "forward passes", "largest batch"], throughput(atlas, hf, work))),
    ]
    md = "\n\n".join(f"**{title}**\n\n{body}" for title, body in parts)
    return {"name": "service", "title": f"The warm server: {arch} random weights, {n_labels:,} labels, atlas of "
            f"{records:,} records, CPU", "markdown": md, "raw": raw}


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv)["markdown"])
