"""The ``bioclip-nb`` command.

Exit codes: 0 success, 1 failure (message on stderr), 2 bad usage (one line on stderr).
Results go to stdout (or ``--output``); tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from .. import limits
from .._version import __version__
from ..errors import AtlasError, EncoderUnavailableError, UploadError, UsageError
from ..layout import BIOCLIP2, BIOCLIP25, PIXEL_MODEL, Scope, parse_taxon
from ..outputs import formats


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _top_n(text: str) -> int:
    try:
        return limits.check_top_n(_int(text, "--top-n"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--" + str(exc).replace("top_n", "top-n", 1)) from None


def _positive(text: str) -> int:
    value = _int(text, "a count")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} takes a whole number, got {text!r}") from None


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cull-idle takes minutes, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--cull-idle must be 0 or more minutes, got {value:g}")
    return value


def _port(text: str) -> int:
    value = _int(text, "--port")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be from 0 to 65535, got {value}")
    return value


def _taxon(text: str) -> str:
    try:
        parse_taxon([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = _Parser(prog="bioclip-nb", description="Find similar organism images in TreeOfLife-200M or your own atlas.")
    p.add_argument("--version", action="version", version=f"bioclip-nb {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on failure")

    s = sub.add_parser("search", parents=[common], help="search an atlas by image, text or vectors",
                       description="Search by image files, a text query, or a .npy of vectors.")
    s.add_argument("images", nargs="*", metavar="IMAGE", help="image files to search with")
    s.add_argument("--text", help='search by a name or description, e.g. "Vulpes vulpes"')
    s.add_argument("--vectors", type=Path, metavar="FILE.npy", help="(n, dim) or (dim,) float array; L2-normalised before search")
    _atlas_arg(s)
    s.add_argument("--top-n", type=_top_n, default=limits.DEFAULT_TOP_N,
                   help=f"hits per query, {limits.MIN_TOP_N}-{limits.MAX_TOP_N} (default {limits.DEFAULT_TOP_N})")
    s.add_argument("--nprobe", type=_positive, default=None, help=f"IVF cells to scan (default min({limits.DEFAULT_NPROBE}, nlist))")
    s.add_argument("--scope", choices=[sc.value for sc in Scope], default=Scope.ALL.value, help="records to search (default all)")
    s.add_argument("--taxon", type=_taxon, action="append", default=[], metavar="RANK=NAME",
                   help="keep only hits with this name at this rank, e.g. class=Aves (repeatable)")
    s.add_argument("--format", choices=formats.cli_keys(), default="json",
                   help="output format (default json): " + "; ".join(f"{f.key}: {f.help}" for f in formats.FORMATS if not f.needs_images))
    s.add_argument("--with-occurrences", action="store_true",
                   help="add each GBIF hit's place, date and licence from GBIF's occurrence API ($BIOCLIP_NB_GBIF_API)")
    s.add_argument("--no-fold", dest="fold", action="store_false",
                   help="keep copies of one image as separate hits (default: fold them, refill to --top-n)")
    s.add_argument("--predict-within", metavar="RANK=NAME|FILE.csv", default=None,
                   help="restrict the model's prediction to a taxon (genus=Vulpes) or a checklist CSV whose first "
                        "column is named after a rank (e.g. species)")
    s.add_argument("--output", default="-", metavar="PATH|-", help="write results here (default stdout)")
    s.add_argument("--device", default="auto", help="torch device for the encoder: auto, cpu, cuda, mps")
    _runtime_arg(s)
    where = s.add_mutually_exclusive_group()
    where.add_argument("--server", metavar="URL", default=None,
                       help="search through this bioclip-nb server (default: $BIOCLIP_NB_SERVER, or the one running "
                            "here, started in the background if needed)")
    where.add_argument("--local", action="store_true", help="search in this process (load the model here)")

    i = sub.add_parser("info", parents=[common], help="describe an atlas (JSON)")
    _atlas_arg(i)

    b = sub.add_parser("build", parents=[common], help="build an atlas from a folder or table of images",
                       description="Build an atlas from a folder of images (taxonomy from folder names or a "
                                   "metadata.csv beside them) or a .csv/.parquet listing image paths or URLs.")
    b.add_argument("source", type=Path, nargs="?", help="folder of images, or a .csv/.parquet table")
    b.add_argument("--out", type=Path, required=True, help="atlas directory to create")
    b.add_argument("--model", default="auto",
                   help=f"encoder: auto (BioCLIP 2 if its weights are here, else the stand-in), "
                        f"{BIOCLIP2}, or {PIXEL_MODEL}")
    b.add_argument("--scheduler", default="local", help="local, or a dask.distributed scheduler address (tcp://host:8786)")
    b.add_argument("--batch-size", type=_positive, default=256, help="images per checkpointed chunk (default 256)")
    b.add_argument("--force", action="store_true", help="replace an existing atlas at --out")
    b.add_argument("--no-copy-images", action="store_true", help="do not keep copies of the images in the atlas")
    b.add_argument("--embeddings", type=Path, default=None, metavar="PATH",
                   help="instead of images, a folder of published embedding parquet files (TreeOfLife-200M-Embeddings, "
                        "e.g. the bioclip-2.5-vith14_float16 config) to index; needs --metadata and --model")
    b.add_argument("--metadata", type=Path, default=None, metavar="ATLAS",
                   help="with --embeddings: a published-layout atlas (or its DuckDB file) whose URLs, sources and "
                        "publishers are joined by uuid")
    b.add_argument("--factory", default=None, help="with --embeddings: the FAISS index (default: IVF sized to the "
                                                   "count, PQ16 as upstream)")
    b.add_argument("--workers", type=_positive, default=None,
                   help="with --embeddings and a local scheduler: Dask worker processes (default: one per core)")

    m = sub.add_parser("demo", parents=[common], help="build (or reuse) the demo atlas and print its path")
    m.add_argument("--dir", type=Path, default=None, help="where (default $BIOCLIP_NB_HOME/demo)")
    m.add_argument("--synthetic", type=_positive, default=None, metavar="N",
                   help="instead, a vectors-only atlas of N clustered vectors (default dir $BIOCLIP_NB_HOME/synthetic-N)")
    m.add_argument("--model", default="auto", help="encoder for the drawn specimens (default auto)")
    m.add_argument("--force", action="store_true", help="rebuild even if present")

    v = sub.add_parser("dashboard", parents=[common], help="serve the dashboard with Voila and print its URL")
    _atlas_arg(v, several=True)
    v.add_argument("--port", type=_positive, default=8866, help="port (default 8866)")
    v.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    v.add_argument("--no-browser", action="store_true", help="do not open a browser")
    v.add_argument("--base-url", default="/", metavar="PATH",
                   help="serve under this path (behind a proxy, e.g. /user/NAME/bioclip-nb/; default /)")
    v.add_argument("--exit-with-parent", action="store_true",
                   help="stop (with Voila and its kernels) when the process that started this one exits "
                        "(how the JupyterLab launcher starts it)")
    v.add_argument("--cull-idle", type=_minutes, default=30.0, metavar="MINUTES",
                   help="shut down kernels idle this long, page open or not (default 30; 0: never)")
    v.add_argument("--server", nargs="?", const="auto", default=None, metavar="URL",
                   help="kernels use this bioclip-nb server and hold no model or index (no URL: the one "
                        "running here, started if needed)")

    sv = sub.add_parser("serve", parents=[common], help="keep the model and atlas loaded for every search and dashboard",
                        description="Serve one atlas (or several, one per model), its encoder (loaded once) and the "
                                    "machine's image fetcher over HTTP, to bioclip-nb search, dashboards and notebooks. "
                                    "Every request needs the token kept in $BIOCLIP_NB_HOME/server.json.")
    _atlas_arg(sv, several=True)
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0: any free port)")
    sv.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, mps")
    _runtime_arg(sv)
    sv.add_argument("--idle-minutes", type=_minutes, default=30.0, metavar="MINUTES",
                    help="stop after this long without a request (default 30; 0: never)")
    sv.add_argument("--token-file", type=Path, default=None, metavar="PATH",
                    help="keep the token in this file (created 0600 if missing), e.g. to share with a class")
    sv.add_argument("--batch-ms", type=float, default=None,
                    help="wait this long to batch concurrent encodes into one forward pass (default: 5 on a GPU; "
                         "0, no batching, on a CPU, where it gained nothing measurable)")
    sv.add_argument("--max-concurrent", type=_positive, default=32, help="requests at once before answering 503 (default 32)")
    sv.add_argument("--timeout", type=float, default=120.0, help="seconds a request may take (default 120)")

    st = sub.add_parser("status", parents=[common], help="is a bioclip-nb server running? (exit 3 if not)")
    st.add_argument("--server", metavar="URL", default=None, help="ask this server (default: the one running here)")
    st.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("stop", parents=[common], help="stop the bioclip-nb server running here")
    ck = sub.add_parser("check", parents=[common], help="diagnose this installation: Python, torch, model, atlas, disk, server")
    _atlas_arg(ck)

    qz = sub.add_parser("quantizer", parents=[common], help="build the optional HNSW coarse quantizer for a large atlas",
                        description="Build an HNSW graph over the atlas's IVF centroids, cached under "
                                    "$BIOCLIP_NB_HOME/cache and used by default from then on.")
    _atlas_arg(qz)

    pr = sub.add_parser("prepare", parents=[common], help="compute an atlas's derived data once, for everybody",
                        description="Validate the atlas and compute its scope counts, scope bitmaps and cell counts, "
                                    "the HNSW coarse quantizer and the atlas map, so that no user waits for them.")
    _atlas_arg(pr)
    pr.add_argument("--derived-dir", type=Path, default=None, metavar="DIR",
                    help="write here instead of $BIOCLIP_NB_HOME/cache; users read it with BIOCLIP_NB_DERIVED_DIR=DIR")
    pr.add_argument("--no-map", action="store_true", help="skip the atlas map (UMAP; about 40 s at 65,536 cells)")
    pr.add_argument("--no-quantizer", action="store_true", help="skip the HNSW coarse quantizer")
    pr.add_argument("--no-hit-columns", action="store_true",
                    help="skip the hit columns (about 100 bytes a record, 24 GB at 234M); searches then read "
                         "their rows from DuckDB, a few ms slower")
    pr.add_argument("--embeddings", type=Path, default=None, metavar="PATH",
                    help="a folder of published embedding parquet files (TreeOfLife-200M-Embeddings, the config of "
                         "the atlas's model): join them by uuid into the atlas's full vectors, so searches rank exactly")
    pr.add_argument("--runtime", action="store_true",
                    help="also export the atlas's model for a faster CPU runtime and check it against torch "
                         "(once per machine; otherwise the dashboard and the server do it in the background)")
    pr.add_argument("--labels", action="store_true",
                    help="also embed the Tree of Life names with the atlas's model, for a model whose labels are not "
                         "published (BioCLIP 2.5: ~950,000 names, hours on a CPU, resumable); its predictions need them")
    pr.add_argument("--precision", choices=("int8", "float16"), default=None,
                    help="how the full vectors are stored: int8 (default; half the disk, similarity within 1e-3) "
                         "or float16 (as published)")

    d = sub.add_parser("download", parents=[common], help="download the published index and metadata (resumable)")
    d.add_argument("--dir", type=Path, default=None, help="destination (default $BIOCLIP_NB_HOME/data)")
    d.add_argument("--embeddings", nargs="?", const="bioclip-2_float16", default=None, metavar="CONFIG",
                   help="instead, the published embeddings for exact answers (TreeOfLife-200M-Embeddings, gated; "
                        "CONFIG bioclip-2_float16 is about 360 GB), for `prepare --embeddings`")
    return p


def _runtime_arg(p: argparse.ArgumentParser) -> None:
    from ..encoders.runtimes import RUNTIMES
    p.add_argument("--runtime", choices=RUNTIMES, default=None,
                   help="how the encoder runs on a CPU: auto (the fastest that passed this machine's equivalence "
                        "check against torch), or one by name (default: $BIOCLIP_NB_RUNTIME, else auto)")


def _atlas_arg(p: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        p.add_argument("--atlas", type=Path, action="append", default=None,
                       help="atlas directory; repeat it for several (e.g. a BioCLIP 2 and a BioCLIP 2.5 atlas: a model "
                            "selector switches; the first is the default). Default: $BIOCLIP_NB_ATLAS, downloaded "
                            "data, then the demo atlas")
        return
    p.add_argument("--atlas", type=Path, default=None,
                   help="atlas directory (default: $BIOCLIP_NB_ATLAS, downloaded data, then the demo atlas)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bioclip-nb``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(COMMANDS[args.command](args) or 0)
    except UsageError as exc:
        sys.stderr.write(f"bioclip-nb {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except (AtlasError, EncoderUnavailableError, UploadError, ValueError, OSError, RuntimeError, ImportError, LookupError) as exc:
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(f"bioclip-nb {args.command}: {exc}\n")
        return 1


def _open_atlas(args):
    from ..core.atlas import Atlas
    from ..core.locate import locate_atlas
    return Atlas.open(locate_atlas(args.atlas))


def cmd_info(args) -> int:
    with _open_atlas(args) as atlas:
        print(json.dumps(atlas.info(), indent=2))
    return 0


def cmd_quantizer(args) -> int:
    from ..core.quantizer import build_sidecar
    with _open_atlas(args) as atlas:
        if atlas.nlist <= 1:
            raise ValueError(f"{atlas.path} has a flat index: there is no coarse quantizer to speed up")
        path, seconds = build_sidecar(atlas.index, atlas.cache_dir)
    sys.stderr.write(f"built an HNSW quantizer over {atlas.nlist:,} centroids in {seconds:.1f} s\n")
    print(path)
    return 0


def cmd_prepare(args) -> int:
    import dataclasses
    import time

    from ..config import Settings
    from ..core.atlas import Atlas
    from ..core.locate import locate_atlas
    from .prepare import prepare, prepare_labels, prepare_runtime
    settings = Settings.from_env()
    if args.derived_dir is not None:
        settings = dataclasses.replace(settings, cache=args.derived_dir.expanduser().resolve())
    if args.precision is not None and args.embeddings is None:
        raise UsageError("--precision goes with --embeddings")
    t0 = time.perf_counter()
    with Atlas.open(locate_atlas(args.atlas), settings=settings) as atlas:       # validates, once
        opened = time.perf_counter() - t0
        seconds = prepare(atlas, with_map=not args.no_map, with_quantizer=not args.no_quantizer,
                          with_hit_columns=not args.no_hit_columns)
        report = {}
        if args.embeddings is not None:
            from ..core.embeddings import prepare_embeddings
            from ..core.fullvectors import DEFAULT_PRECISION
            report = prepare_embeddings(atlas, args.embeddings, atlas.cache_dir, args.precision or DEFAULT_PRECISION)
            atlas.exactness.reload()
            report["rerank_pool"] = atlas.exactness.calibrate()
            sys.stderr.write(f"full vectors for {report['records_with_vector']:,} of {report['records']:,} records; "
                             f"{report['records_without_vector']:,} have no published vector and keep their PQ "
                             f"estimate (exact=False); {report['rows_not_in_atlas']:,} parquet rows are not in this atlas\n")
        where = atlas.cache_dir
        runtime = prepare_runtime(atlas.model, settings.cache_dir) if args.runtime else None
        labels = prepare_labels(atlas.model, settings.cache_dir) if args.labels else None
    print(json.dumps({"atlas": str(atlas.path), "derived": str(where), "open_and_validate_s": round(opened, 3),
                      "seconds": {k: round(v, 3) for k, v in seconds.items()},
                      **({"full_vectors": report} if report else {}),
                      **({"runtime": runtime} if runtime is not None else {}),
                      **({"labels": labels} if labels is not None else {})}, indent=2))
    if args.derived_dir is not None:
        sys.stderr.write(f"prepared into {where}; point users at it with BIOCLIP_NB_DERIVED_DIR={args.derived_dir}\n")
    return 0


def cmd_download(args) -> int:
    from ..builder.download import download_embeddings, download_published
    from ..config import Settings
    dest = args.dir or Settings.from_env().data_dir
    if args.embeddings:
        path = download_embeddings(dest / "embeddings" if args.dir is None else dest, args.embeddings)
        sys.stderr.write(f"next: bioclip-nb prepare --atlas ATLAS --embeddings {path}\n")
    else:
        path = download_published(dest)
    print(path)
    return 0


def cmd_build(args) -> int:
    if args.embeddings is not None:
        return _build_from_embeddings(args)
    if args.source is None:
        raise UsageError("build needs a SOURCE (a folder or table of images), or --embeddings PATH")
    from ..builder.pipeline import build_atlas
    result = build_atlas(args.source, args.out, model=args.model, scheduler=args.scheduler,
                         batch_size=args.batch_size, force=args.force, copy_images=not args.no_copy_images)
    sys.stderr.write(f"built {result.count:,} images ({result.skipped} skipped, listed in "
                     f"{result.path / 'build-report.csv'}) with {result.model}, {result.index}, "
                     f"in {result.seconds:.0f} s\n")
    print(result.path)
    return 0


def _build_from_embeddings(args) -> int:
    from ..builder.fromembeddings import build_from_embeddings, report
    if args.metadata is None or args.model == "auto":
        raise UsageError("build --embeddings needs --metadata ATLAS (for URLs, joined by uuid) and --model "
                         f"(the embeddings' model, e.g. {BIOCLIP25})")
    result = build_from_embeddings(args.embeddings, args.metadata, args.model, args.out, scheduler=args.scheduler,
                                   workers=args.workers, factory=args.factory, force=args.force)
    sys.stderr.write(report(result) + "\n")
    print(json.dumps(result.to_json(), indent=2))
    return 0


def cmd_demo(args) -> int:
    from ..config import Settings
    from ..demo.specimens import build_demo, build_synthetic, ensure_demo_atlas
    settings = Settings.from_env()
    if args.synthetic:
        dest = args.dir or settings.home / f"synthetic-{args.synthetic}"
        if dest.exists() and not args.force:
            print(dest)
            return 0
        print(build_synthetic(dest, args.synthetic, force=True))
        return 0
    dest = args.dir or settings.demo_dir
    path = build_demo(dest, model=args.model, force=True) if args.force else ensure_demo_atlas(dest, model=args.model)
    print(path)
    return 0


def cmd_dashboard(args) -> int:
    import os

    from ..config import ENV_SERVER, Settings
    from ..core.atlas import Atlas
    from ..core.locate import locate_atlases
    from .webapp import ServeOptions, describe, exit_with_parent, serve
    if args.exit_with_parent:
        parent = os.getppid()
        exit_with_parent()
        if os.getppid() != parent:             # the parent died before the signal was armed
            return 0
    settings = Settings.from_env()
    atlases = locate_atlases(args.atlas, settings)  # builds the demo here, with progress, if it is needed
    env = dict(os.environ)
    if args.server:
        from ..service.commands import server_for_dashboard
        env[ENV_SERVER] = server_for_dashboard(args.server, atlases, settings)
        print(f"kernels use the bioclip-nb server {env[ENV_SERVER]} (no model or index in them)", flush=True)
    else:
        for path in atlases:
            Atlas.open(path).close()           # refuse a broken atlas before starting a server
    base_url = "/" + args.base_url.strip("/") + "/" if args.base_url.strip("/") else "/"
    options = ServeOptions(port=args.port, ip=args.ip, open_browser=not args.no_browser, cull_idle=args.cull_idle,
                           base_url=base_url)
    host = "localhost" if args.ip in ("127.0.0.1", "localhost") else args.ip
    print(f"bioclip-nb dashboard on {', '.join(map(str, atlases))}", flush=True)
    print(describe(options, f"http://{host}:{args.port}{base_url}"), flush=True)
    return serve(atlases, options, env=env)


def cmd_check(args) -> int:
    from .check import run_checks
    return run_checks(args.atlas)


def _service(name: str):
    def run(args) -> int:
        from ..service import commands
        return getattr(commands, name)(args)
    return run


def cmd_search(args) -> int:
    from .clisearch import cmd_search as run
    return run(args)


COMMANDS = {"search": cmd_search, "info": cmd_info, "download": cmd_download, "build": cmd_build, "demo": cmd_demo,
            "dashboard": cmd_dashboard, "quantizer": cmd_quantizer, "prepare": cmd_prepare, "check": cmd_check,
            "serve": _service("cmd_serve"), "status": _service("cmd_status"), "stop": _service("cmd_stop")}

if __name__ == "__main__":
    raise SystemExit(main())
