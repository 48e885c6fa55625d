"""Where and when the hits were seen: their GBIF occurrence records, the filters on them, and
the "Where and when" tab (a map, the season, countries).

``Places`` (no widgets) holds one search's occurrence table and the filter; ``PlacesView``
draws them. The records are looked up in the background after the gallery's images; nothing
waits for them.
"""

from __future__ import annotations

import calendar
import math
import threading
from collections import Counter

import ipywidgets as w
import pandas as pd

from ..insight import plots
from ..occurrences import COLUMNS, PlaceFilter, reusable, with_occurrences
from . import html
from .chart import Chart

ANY = "(any)"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def framing(lat: pd.Series, lon: pd.Series, width_px: int = 640, height_px: int = 320) -> tuple[tuple[float, float], int]:
    """A centre and zoom that show every point with a margin (``Map.fit_bounds`` needs the page to
    answer, which a kernel without one never gets). At zoom z a 256-px tile spans 360/2^z degrees."""
    span_lon = max(float(lon.max() - lon.min()), 0.5) * 1.3
    span_lat = max(float(lat.max() - lat.min()), 0.5) * 1.3
    fits = min(math.log2(width_px / 256 * 360 / span_lon), math.log2(height_px / 256 * 170 / span_lat))
    return (float((lat.max() + lat.min()) / 2), float((lon.max() + lon.min()) / 2)), int(max(1, min(12, math.floor(fits))))


class Places:
    """One search's occurrence records and the filter on them."""

    def __init__(self, source=None):
        self.source = source            # occurrences.Occurrences, or a server's RemoteOccurrences
        self.table: pd.DataFrame | None = None
        self.filter = PlaceFilter()
        self._lock = threading.Lock()

    def reset(self) -> None:
        """A new search: its records are not known yet (the filter stays)."""
        with self._lock:
            self.table = None

    def lookup(self, hits: pd.DataFrame, cancel: threading.Event | None = None) -> pd.DataFrame | None:
        """Look the hits' records up (blocking; run it in the background)."""
        if self.source is None or hits is None or not len(hits):
            return None
        table = self.source.lookup(hits, cancel=cancel)
        with self._lock:
            self.table = table
        return table

    def shown(self, hits: pd.DataFrame) -> pd.DataFrame:
        """The hits the filter lets through (all of them before the records are known)."""
        table = self.table
        if hits is None or table is None or not self.filter.active:
            return hits
        keep = self.filter.keep(table)
        ids = set(keep.index[keep])
        return hits[hits["id"].astype(int).isin(ids)]

    def annotate(self, hits: pd.DataFrame) -> pd.DataFrame:
        """``hits`` with the occurrence columns, when the records are known."""
        return hits if self.table is None else with_occurrences(hits, self.table)

    def record(self, hit_id: int) -> dict | None:
        table = self.table
        if table is None or int(hit_id) not in table.index:
            return None
        return table.loc[int(hit_id)].to_dict()


class PlacesView:
    """The "Where and when" tab: map, season, countries, and the filters."""

    def __init__(self, on_filter, on_select=None):
        from ipyleaflet import LayerGroup, Map
        self._on_select = on_select or (lambda hit_id: None)
        self.summary = w.HTML("<p>Search first: the hits' places and dates come from their GBIF records.</p>")
        self.map = Map(center=(20, 0), zoom=1, scroll_wheel_zoom=True, layout=w.Layout(width="100%", height="320px"))
        self.markers = LayerGroup()
        self.map.add(self.markers)
        self.season = Chart()
        self.countries = w.HTML()
        self.months = w.IntRangeSlider(value=(1, 12), min=1, max=12, description="Months", continuous_update=False,
                                       readout=True, layout=w.Layout(width="360px"))
        self.country = w.Dropdown(options=[ANY], value=ANY, description="Country")
        self.reusable = w.Checkbox(value=False, description="Reusable only (CC0, CC BY)", indent=False)
        self.in_view = w.Checkbox(value=False, description="Only what the map shows", indent=False)
        for ctl in (self.months, self.country, self.reusable, self.in_view):
            ctl.observe(lambda _ch: on_filter(), names="value")
        filters = w.VBox([w.HTML("<b>Narrow the results</b> (the gallery and the exports follow)"), self.months,
                          self.country, w.HBox([self.reusable, self.in_view])])
        self.widget = w.VBox([self.summary, self.map, w.HBox([self.season, self.countries]), filters])

    def read_filter(self) -> PlaceFilter:
        """The filter the controls describe."""
        box = None
        if self.in_view.value and self.map.bounds:
            (south, west), (north, east) = self.map.bounds
            box = (south, west, north, east)
        return PlaceFilter(months=tuple(self.months.value), country=None if self.country.value == ANY else self.country.value,
                           reusable_only=bool(self.reusable.value), box=box)

    def show(self, hits: pd.DataFrame | None, places: Places, shown: pd.DataFrame | None) -> None:
        """Draw the records of ``hits``; ``shown`` are those the filter lets through."""
        from ipyleaflet import CircleMarker
        table = places.table
        old = list(self.markers.layers)
        self.markers.clear()
        for layer in old:               # gone from the page: free them in the kernel too
            layer.close()
        if hits is None or table is None:
            self.summary.value = "<p>Looking up the hits' GBIF records...</p>" if hits is not None else ""
            self.season.hide()
            self.countries.value = ""
            return
        rows = places.annotate(hits)
        visible = set(shown["id"].astype(int)) if shown is not None else set(rows["id"].astype(int))
        located = rows.dropna(subset=["latitude", "longitude"])
        for r in located.to_dict("records"):
            marker = CircleMarker(location=(float(r["latitude"]), float(r["longitude"])), radius=7, weight=1,
                                  color="#1f4d1f", fill_color="#3c9a3c" if int(r["id"]) in visible else "#bbbbbb",
                                  fill_opacity=0.9)
            marker.on_click(lambda i=int(r["id"]), **_event: self._on_select(i))   # its details, on the right
            self.markers.add(marker)
        if len(located):
            self.map.center, self.map.zoom = framing(located["latitude"].astype(float), located["longitude"].astype(float))
        statuses = Counter(rows["occurrence_status"].fillna("unknown"))
        self.summary.value = html.places_summary(len(rows), len(located), len(visible), statuses, places.filter.describe())
        months = pd.to_numeric(rows["month"], errors="coerce").dropna().astype(int)
        if len(months):
            ax = plots.new_axes((4.2, 2.2))
            plots.month_bars(months.tolist(), ax=ax)
            peak = Counter(months.tolist()).most_common(1)[0]
            self.season.show(plots.to_png(ax), f"Bar chart of the results by month of observation: {len(months)} with a "
                             f"month, most in {calendar.month_name[peak[0]]} ({peak[1]}).")
        else:
            self.season.hide()
        codes = Counter(c for c in rows["country_code"] if isinstance(c, str))
        self.countries.value = html.country_counts(codes, sum(reusable(x) for x in rows["license"]))
        options = [ANY, *sorted(codes)]
        if list(self.country.options) != options:
            value = self.country.value if self.country.value in options else ANY
            self.country.options, self.country.value = options, value


__all__ = ["COLUMNS", "Places", "PlacesView"]
