"""The errors bioclip-nb raises on purpose. Each message names the input and the fix."""

from __future__ import annotations


class AtlasError(ValueError):
    """An atlas directory that cannot be served as it is (missing, corrupt, inconsistent)."""


class ModelMismatchError(AtlasError):
    """Vectors from one model searched against an atlas built with another."""


class EncoderUnavailableError(RuntimeError):
    """Model weights or label files that cannot be loaded here."""


class UploadError(ValueError):
    """An uploaded file that is not an image we can use; the message says why."""
