"""The dashboard's tabs, in the order shown: the one list that gives each its position.

A new tab is a module defining a ``tab.Tab`` subclass (its key, title, widgets and actions)
and one line here. See docs/architecture.md, "Where to add... a dashboard tab".
"""

from __future__ import annotations

from .batchview import BatchTab
from .comparing import CompareTab
from .exporting import ExportTab
from .placing import WhereTab
from .plotsview import PlotsTab
from .resulttabs import ConsensusTab, GalleryTab, PredictionTab, TaxonomyTab
from .tab import Tab

REGISTRY: tuple[type[Tab], ...] = (
    GalleryTab,
    PredictionTab,
    TaxonomyTab,
    ConsensusTab,
    PlotsTab,
    ExportTab,
    BatchTab,
    WhereTab,
    CompareTab,
)
