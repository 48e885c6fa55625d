"""The installed version, read from the package metadata (never set by hand in two places)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bioclip-nb")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
