"""Images in and out: uploads become RGB images or a clear refusal; result images are fetched
from their hosts under per-host policies, cached on disk, each outcome a ``FetchStatus``.

>>> from bioclip_nb.images import load_upload, ImageFetcher, open_image_cache
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "load_upload": "uploads", "to_rgb": "uploads", "MAX_UPLOAD_BYTES": "uploads",
    "ImageFetcher": "fetch", "FetchResult": "fetch", "FetchStatus": "fetch", "FetchLimits": "fetch",
    "open_image_cache": "fetch", "failure_counts": "fetch",
    "HostPolicy": "policy", "DEFAULT_POLICIES": "policy",
})
