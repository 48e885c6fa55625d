"""A figure on the page with its alternative text: an ``ipywidgets.Image`` cannot carry one."""

from __future__ import annotations

import ipywidgets as w

from . import html


class Chart(w.HTML):
    """A PNG shown as ``<img alt=...>``; hidden until :meth:`show` (``png`` keeps the bytes)."""

    def __init__(self, width: int | None = None, **kwargs):
        super().__init__(layout=w.Layout(display="none"), **kwargs)
        self._width = width
        self.png = b""

    def show(self, png: bytes, alt: str) -> None:
        """Show ``png``, described by ``alt`` (what a reader who cannot see it needs)."""
        self.png = png
        self.value = html.picture(png, alt, width=self._width)
        self.layout.display = None

    def hide(self) -> None:
        self.layout.display = "none"
