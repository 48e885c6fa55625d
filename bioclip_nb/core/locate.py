"""Which atlas to open when none is named."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ..config import Settings
from ..errors import AtlasError
from ..layout import INDEX_FILE, METADATA_FILE


def locate_atlas(explicit: str | Path | None = None, settings: Settings | None = None,
                 build_demo: bool = True) -> Path:
    """The atlas to use: ``explicit``, then ``$BIOCLIP_NB_ATLAS``, then the downloaded
    artifacts in ``$BIOCLIP_NB_HOME/data``, then the demo atlas (built on first use)."""
    settings = settings or Settings.from_env()
    if explicit:
        return Path(explicit).expanduser()
    if settings.atlas:
        return settings.atlas
    data = settings.data_dir
    if (data / INDEX_FILE).is_file() and (data / METADATA_FILE).is_file():
        return data
    if not build_demo:
        raise AtlasError("no atlas configured: pass --atlas DIR, set BIOCLIP_NB_ATLAS, "
                         "run `bioclip-nb download`, or build the demo with `bioclip-nb demo`")
    from ..demo.specimens import ensure_demo_atlas
    return ensure_demo_atlas(settings.demo_dir)


def locate_atlases(explicit: Sequence[str | Path] | None = None, settings: Settings | None = None) -> list[Path]:
    """Several atlases to hold (a server, a dashboard with a model selector): ``explicit``, else
    every one ``$BIOCLIP_NB_ATLAS`` names (``os.pathsep``-separated), else :func:`locate_atlas`'s one."""
    settings = settings or Settings.from_env()
    if explicit:
        return [Path(p).expanduser() for p in explicit]
    if settings.atlas:
        return [settings.atlas, *settings.more_atlases]
    return [locate_atlas(None, settings)]


def atlas_keys(atlases: Sequence) -> list[str]:
    """A short, URL-safe, distinct key per atlas (or atlas path), from its directory's name
    ('demo', 'bioclip-25', 'demo-2'): how a server's routes and a dashboard's links name it."""
    keys: list[str] = []
    for atlas in atlases:
        base = re.sub(r"[^a-z0-9]+", "-", Path(getattr(atlas, "path", atlas)).name.lower()).strip("-")[:40] or "atlas"
        key, n = base, 2
        while key in keys:
            key, n = f"{base}-{n}", n + 1
        keys.append(key)
    return keys
