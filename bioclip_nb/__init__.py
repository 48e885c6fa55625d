"""bioclip-nb: find similar organism images with BioCLIP 2, FAISS and DuckDB, from a notebook.

>>> from bioclip_nb import Atlas, load_encoder
>>> atlas = Atlas.open("~/data/bioclip-lite")
>>> enc = load_encoder(atlas.model)
>>> hits = atlas.search(enc.encode(image).embedding, top_n=10, scope="inat")
>>> request = SearchRequest(top_n=20, taxon={"class": "Aves"})     # the same settings, as one object
>>> hits = request.run(atlas, enc.encode(image).embedding, model=enc.model_id)

Names are imported on first use, so ``import bioclip_nb`` is cheap (no FAISS, DuckDB, torch
or pandas until something needs them).
"""

from ._lazy import attach
from ._version import __version__

__getattr__, __dir__, _names = attach(__name__, {
    "Atlas": "core.atlas",
    "Settings": "config",
    "AtlasError": "errors", "EncoderUnavailableError": "errors", "ModelMismatchError": "errors",
    "UploadError": "errors", "ServerError": "errors", "ServerUnavailableError": "errors",
    "Encoding": "encoders", "load_encoder": "encoders",
    "ImageFetcher": "images", "load_upload": "images",
    "Manifest": "layout", "RANKS": "layout", "Rank": "layout", "Scope": "layout", "MODELS": "layout",
    "locate_atlas": "core.locate", "SearchRequest": "request",
    "connect": "service",
    "layout": "", "taxonomy": "", "teach": "", "toy": "", "Within": "encoders.within",
    # modules that live in a subpackage, under their short names (notebooks use these)
    "explore": "=insight.explore", "plots": "=insight.plots", "results": "=outputs.results",
    "batch": "=outputs.batch", "provenance": "=outputs.provenance", "index": "=core.index",
    "folding": "=core.folding",
})
__all__ = [*_names, "__version__"]
