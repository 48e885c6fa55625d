"""bioclip-nb: find similar organism images with BioCLIP 2, FAISS and DuckDB, from a notebook.

>>> from bioclip_nb import Atlas, load_encoder
>>> atlas = Atlas.open("~/data/bioclip-lite")
>>> enc = load_encoder(atlas.model)
>>> hits = atlas.search(enc.encode(image).embedding, top_n=10, nprobe=16, scope="inat")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .atlas import Atlas, Manifest
from .config import Settings
from .errors import AtlasError, EncoderUnavailableError, ModelMismatchError, UploadError
from .locate import locate_atlas
from .metadata import Scope
from .model import Encoding, load_encoder
from .taxonomy import RANKS, Rank

__all__ = [
    "Atlas", "AtlasError", "EncoderUnavailableError", "Encoding", "Manifest", "ModelMismatchError", "RANKS",
    "Rank", "Scope", "Settings", "UploadError", "__version__", "load_encoder", "locate_atlas",
]
