"""Building atlases: read a source (a folder or a table of images), embed it in checkpointed
chunks (locally or on Dask), write the published schema; and download the published atlas.

(Named ``builder``: a ``build/`` folder is what packaging tools and .gitignore files treat as
output, and would be left out of the repository and the wheel.)

>>> from bioclip_nb.builder import build_atlas
>>> build_atlas("~/photos", "~/atlases/mine")
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "build_atlas": "pipeline", "BuildResult": "pipeline", "resolve_model": "pipeline",
    "move_into_place": "pipeline", "download_published": "download", "scan_source": "sources",
    "writer": "", "sources": "", "pipeline": "", "download": "",
})
