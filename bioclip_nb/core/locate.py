"""Which atlas to open when none is named."""

from __future__ import annotations

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
