"""The ipywidgets dashboard (the only part of bioclip-nb that imports ipywidgets)."""

from .app import Dashboard
from .state import SearchSession

__all__ = ["Dashboard", "SearchSession"]
