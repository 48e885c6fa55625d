"""Encoders: BioCLIP 2 through pybioclip, and the offline stand-in, behind one interface.

>>> from bioclip_nb.encoders import load_encoder
>>> enc = load_encoder(atlas.model)        # loaded once per process, shared
>>> e = enc.encode(image)                  # Encoding: .embedding and .predict(rank, k)

Which class serves a model id is the ``kind`` of its entry in ``layout.MODELS``. On a CPU a
BioCLIP encoder runs its visual tower with the fastest runtime that passed this machine's
equivalence check against torch (:mod:`.runtimes`); ``runtime="torch"`` opts out.
"""

from __future__ import annotations

import threading

from ..errors import EncoderUnavailableError
from ..layout import BIOCLIP2, MODELS, model_spec
from .base import Encoder, Encoding, Prediction
from .cache import EncodingCache

__all__ = ["Encoder", "Encoding", "EncodingCache", "Prediction", "bioclip_available", "load_encoder"]

_ENCODERS: dict[tuple[str, str, str], Encoder] = {}
_LOAD_LOCK = threading.Lock()


def load_encoder(model_id: str = BIOCLIP2, device: str = "auto", runtime: str | None = None,
                 background: bool = True) -> Encoder:
    """The encoder for ``model_id``, loaded once per process and shared (thread-safe).

    ``runtime``: ``"auto"`` (the fastest verified on this CPU, torch on a GPU), ``"torch"``, or
    one of :data:`.runtimes.FAST_RUNTIMES`; None reads ``$BIOCLIP_NB_RUNTIME`` (default
    ``auto``). With ``auto`` and nothing prepared yet,
    ``background`` prepares a runtime in a thread while torch answers (long-lived processes:
    the dashboard, the server); one-shot commands pass False and stay on torch."""
    from .runtimes import RUNTIMES, default_runtime
    runtime = runtime or default_runtime()
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    key = (model_id, device, runtime)
    with _LOAD_LOCK:
        if key not in _ENCODERS:
            spec = model_spec(model_id)
            if spec is not None and spec.kind == "pixel":
                from .pixel import PixelEncoder
                _ENCODERS[key] = PixelEncoder()
            elif spec is not None and spec.kind == "openclip":
                from .bioclip import BioClipEncoder
                _ENCODERS[key] = BioClipEncoder.load_open_clip(model_id, device, runtime, background)
            elif (spec is not None and spec.kind == "bioclip") or model_id.startswith("hf-hub:"):
                from .bioclip import BioClipEncoder
                _ENCODERS[key] = BioClipEncoder.load(model_id, device, runtime, background)
            else:
                raise EncoderUnavailableError(
                    f"unknown model {model_id!r}: use one of {', '.join(repr(m) for m in MODELS)}")
        return _ENCODERS[key]


def bioclip_available(model_id: str = BIOCLIP2) -> bool:
    """Whether a BioCLIP model's weights and Tree of Life labels are in the local Hugging Face
    cache (no network is touched)."""
    from .bioclip import weights_cached
    return weights_cached(model_id)


