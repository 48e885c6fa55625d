"""The errors bioclip-nb raises on purpose. Each message names the input and the fix."""

from __future__ import annotations


class AtlasError(ValueError):
    """An atlas directory that cannot be served as it is (missing, corrupt, inconsistent)."""


class ModelMismatchError(AtlasError):
    """Vectors from one model searched against an atlas built with another."""


class EncoderUnavailableError(RuntimeError):
    """Model weights or label files that cannot be loaded here."""


class UnsupportedQueryError(EncoderUnavailableError):
    """A query the atlas's model cannot answer at all (the stand-in cannot embed text): a property
    of the model, not a fault, so the server answers 422, not 503."""


class UploadError(ValueError):
    """An uploaded file that is not an image we can use; the message says why."""


class ServerError(OSError):
    """The bioclip-nb server answered with an error that is not about the input (busy, timed
    out, refused the token, failed); ``kind`` is its error kind, ``status`` the HTTP status."""

    def __init__(self, message: str, kind: str = "error", status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status

    def __str__(self) -> str:
        return self.args[0]


class ServerUnavailableError(ServerError):
    """No bioclip-nb server answers at the address (not started, stopped, killed, unreachable)."""


class UsageError(Exception):
    """Bad usage of the command discovered after parsing (e.g. nprobe larger than the atlas allows): exit 2."""
