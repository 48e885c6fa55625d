"""The Plots tab: how the index found the results."""

from __future__ import annotations

import ipywidgets as w

from .. import plots
from .state import SearchSession


def render_plots(box: w.VBox, session: SearchSession) -> None:
    """Fill the Plots tab for the current search (cluster assignment and nprobe recall)."""
    if session.hits is None or session.encoding is None:
        return
    if session.atlas.nlist <= 1:
        box.children = [w.HTML("<p>This atlas has an exact (flat) index: every record is compared, "
                               "so there are no cells or search depth to show.</p>")]
        return
    box.children = [w.HTML("<p>Plots of the index arrive with the exploration issue.</p>")]
