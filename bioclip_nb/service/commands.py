"""The server's side of the ``bioclip-nb`` command: ``serve``, ``status``, ``stop``, and how
``search`` and ``dashboard`` find (or start) a server."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..config import ENV_AUTOSTART, Settings
from ..errors import ServerError
from .statefile import ServerRecord, read_record

#: ``BIOCLIP_NB_AUTOSTART=0`` stops ``bioclip-nb search`` from starting a server by itself.


def note(message: str) -> None:
    """A line for the person at the terminal (stderr; stdout carries results)."""
    sys.stderr.write(f"bioclip-nb: {message}\n")
    sys.stderr.flush()


def cmd_serve(args) -> int:
    from ..core.locate import locate_atlases
    from .run import serve
    settings = Settings.from_env()
    return serve(locate_atlases(args.atlas, settings), settings, host=args.host, port=args.port, device=args.device, runtime=args.runtime,
                 idle_minutes=args.idle_minutes, token_file=args.token_file, batch_window=None if args.batch_ms is None else args.batch_ms / 1000,
                 max_concurrent=args.max_concurrent, timeout=args.timeout,
                 announce=lambda line: print(line, flush=True))


def cmd_status(args) -> int:
    """Exit 0 when a server answers, 3 when none runs (as service managers do)."""
    from .client import Client, ServerUnavailableError, resolve
    settings = Settings.from_env()
    try:
        url, token = resolve(args.server, None, settings)
    except ServerUnavailableError as exc:
        print(str(exc))
        return 3
    record = read_record(settings.home)
    client = Client(url, token, timeout=10)
    try:
        health = client.health()
        atlases = client.atlases()
    except ServerError as exc:
        print(str(exc))
        return 3
    others = atlases[1:]
    report = {"url": url, **({"pid": record.pid, "idle_minutes": record.idle_minutes, "log": record.log,
                              "uptime_s": round(time.time() - record.started, 1)} if record and record.url == url else {}),
              **health, "atlases": atlases}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    lines = [f"bioclip-nb server {url}" + (f" (pid {report['pid']}, up {report['uptime_s']:.0f} s)" if "pid" in report else ""),
             f"atlas   {health['atlas']}", f"model   {health['model']}: {health['encoder']}"
             + (f" in {health['load_seconds']:.1f} s" if health.get("load_seconds") else "")
             + (f" ({health['encoder_error']})" if health.get("encoder_error") else ""),
             f"busy    {health['in_flight']} requests running"]
    lines[2:2] = [f"also    {a['path']}: {a['model_name']} at /v1/atlases/{a['key']} ({a['encoder']})" for a in others]
    if health.get("batches"):
        b = health["batches"]
        lines.append(f"encoded {b['requests']} images in {b['passes']} forward passes (largest batch {b['largest']})")
    if "idle_minutes" in report:
        lines.append(f"stops after {report['idle_minutes']:g} idle minutes" if report["idle_minutes"] else "no idle shutdown")
    print("\n".join(lines))
    return 0


def cmd_stop(args) -> int:
    from .run import stop
    record = stop(Settings.from_env())
    print(f"stopped the bioclip-nb server {record.url} (pid {record.pid})" if record else "no bioclip-nb server was running")
    return 0


def search_connection(args, atlas: Path | None, settings: Settings):
    """The server ``bioclip-nb search`` should use, or None to search in-process.

    ``--server URL`` must answer (no fallback); otherwise the server recorded under
    ``BIOCLIP_NB_HOME`` if it serves ``atlas`` (or any, when no atlas was named), else one
    started in the background on ``atlas`` or the demo (unless ``BIOCLIP_NB_AUTOSTART=0``);
    anything that fails says so and gives None."""
    from .client import connect
    if args.local:
        return None
    if args.server:
        return connect(args.server, settings=settings)
    if settings.server:
        try:
            return connect(settings.server, settings=settings)
        except ServerError as exc:
            note(f"{exc}; searching in-process")
            return None
    record = read_record(settings.home)
    key = None
    if record is not None and atlas is not None and not _same_atlas(record, atlas):
        key = _key_of(record, atlas)            # one of its other atlases?
        if key is None:
            note(f"the running server serves {record.atlas}, not {atlas}; searching in-process")
            return None
    if record is None:
        if os.environ.get(ENV_AUTOSTART, "1").strip().lower() in ("0", "no", "false", "off"):
            return None
        from ..core.locate import locate_atlas
        record = _start(atlas or locate_atlas(None, settings), settings, args.device, args.runtime)
        if record is None:
            return None
    try:
        return connect(record.url, record.token, settings=settings, atlas=key)
    except ServerError as exc:
        note(f"{exc}; searching in-process")
        return None


def _key_of(record: ServerRecord, atlas: Path) -> str | None:
    """The key under which the running server holds ``atlas`` (None: it does not, or does not answer)."""
    from .client import Client
    try:
        listed = Client(record.url, record.token, timeout=10).atlases()
    except ServerError:
        return None
    want = Path(atlas).resolve()
    return next((a["key"] for a in listed if a.get("key") and Path(a["path"]).resolve() == want), None)


def server_for_dashboard(value: str, atlas: Path | list[Path], settings: Settings) -> str:
    """The URL ``bioclip-nb dashboard --server [URL]`` hands its kernels: the given one, or
    this home's server (started if none runs, on every atlas given)."""
    atlases = [atlas] if isinstance(atlas, str | Path) else atlas
    from .client import connect
    if value != "auto":
        connect(value, settings=settings).close()          # refuse an unreachable server before serving pages
        return value
    record = read_record(settings.home)
    if record is not None:
        from .client import Client
        served = [Path(a["path"]) for a in Client(record.url, record.token, timeout=10).atlases()]
        if [p.resolve() for p in served] != [Path(p).resolve() for p in atlases]:
            raise OSError(f"the running server serves {', '.join(map(str, served))}, not {', '.join(map(str, atlases))}; "
                          "stop it (bioclip-nb stop) or open the dashboard on those atlases")
    record = record or _start(atlases, settings, "auto")
    if record is None:
        raise OSError("the server could not be started; see the message above")
    return record.url


def _start(atlas: Path | list[Path], settings: Settings, device: str, runtime: str | None = None) -> ServerRecord | None:
    from .run import start_background
    note("starting a bioclip-nb server in the background: the model loads once, and later searches reuse it "
         "(it stops after 30 idle minutes; bioclip-nb stop stops it now)")
    try:
        return start_background(atlas, settings, device=device, runtime=runtime,
                                on_wait=lambda r: note(f"server {r.url} is up; loading the model..."))
    except (RuntimeError, OSError) as exc:
        note(f"could not start a server ({exc}); searching in-process")
        return None


def _same_atlas(record: ServerRecord, atlas: Path) -> bool:
    return Path(record.atlas).resolve() == Path(atlas).resolve()
