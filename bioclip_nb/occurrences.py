"""Where, when and under which licence: GBIF occurrence records for hits.

The published metadata has no coordinates, dates or licences, but most hits are GBIF records
and GBIF's occurrence API (``/occurrence/{key}``) has all three. They are fetched through the
image fetcher's machinery (the host's policy shared by every process of the machine, a
User-Agent, timeouts, Retry-After, a disk cache so a repeated search asks nothing) as JSON,
and every hit gets :data:`COLUMNS`, with ``occurrence_status`` saying why a value is missing
("no occurrence record" for EOL and the other sources).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from .images.fetch import JSON, FetchResult, FetchStatus
from .layout import GBIF_OCCURRENCE
from .names import clean, scientific_name

#: The occurrence columns added to hits, in order.
COLUMNS = ("occurrence_status", "latitude", "longitude", "event_date", "month", "country_code", "license",
           "rights_holder", "recorded_by", "dataset_key", "citation")
NO_RECORD = "no occurrence record"
#: Licences anyone may reuse with attribution at most.
REUSABLE = ("CC0 1.0", "CC BY 4.0", "CC BY 3.0", "CC BY 2.0")


def occurrence_key(row: Mapping) -> str | None:
    """The GBIF occurrence key of a hit (a GBIF record's numeric ``source_id``), else None."""
    if (clean(row.get("source_dataset")) or "").lower() != "gbif":
        return None
    key = clean(row.get("source_id"))
    return key if key is not None and key.isdigit() else None


def licence_label(value: object) -> str | None:
    """``http://creativecommons.org/licenses/by-nc/4.0/legalcode`` or ``CC_BY_NC_4_0`` -> ``CC BY-NC 4.0``."""
    text = clean(value)
    if text is None:
        return None
    low = text.lower()
    if "publicdomain/zero" in low or low.startswith("cc0"):
        return "CC0 1.0"
    m = re.search(r"licenses/([a-z-]+)/(\d\.\d)", low)
    if m:
        return f"CC {m.group(1).upper()} {m.group(2)}"
    m = re.fullmatch(r"cc_([a-z_]+?)_(\d)_(\d)", low)
    if m:
        return f"CC {m.group(1).upper().replace('_', '-')} {m.group(2)}.{m.group(3)}"
    return text


def reusable(licence: object) -> bool:
    """Whether a licence lets anyone reuse the image (CC0, CC BY)."""
    return licence_label(licence) in REUSABLE


def from_record(record: Mapping, hit: Mapping) -> dict[str, object]:
    """The occurrence columns from a GBIF occurrence JSON object (the image's own licence and
    rights holder when its media entry has them)."""
    media = next((m for m in record.get("media") or [] if isinstance(m, Mapping)), {})
    licence = licence_label(media.get("license") or record.get("license"))
    holder = clean(media.get("rightsHolder")) or clean(record.get("rightsHolder"))
    lat, lon = _number(record.get("decimalLatitude")), _number(record.get("decimalLongitude"))
    date = clean(record.get("eventDate"))
    month = _number(record.get("month"))
    if month is None and date and re.match(r"\d{4}-\d{2}", date):
        month = int(date[5:7])
    row = {"occurrence_status": "ok", "latitude": lat, "longitude": lon, "event_date": date,
           "month": int(month) if month is not None and 1 <= month <= 12 else None,
           "country_code": clean(record.get("countryCode")), "license": licence, "rights_holder": holder,
           "recorded_by": clean(record.get("recordedBy")), "dataset_key": clean(record.get("datasetKey"))}
    row["citation"] = citation(hit, row, str(record.get("key") or occurrence_key(hit) or ""))
    return row


def citation(hit: Mapping, occ: Mapping, key: str) -> str:
    """One line to cite an image: who, when, what, where it is kept, under which licence."""
    who = occ.get("recorded_by") or occ.get("rights_holder") or clean(hit.get("publisher")) or "unknown"
    year = (occ.get("event_date") or "")[:4] or "n.d."
    name = scientific_name(hit.get("genus"), hit.get("species")) or "unidentified"
    licence = occ.get("license") or "licence not stated"
    return f"{who} ({year}). {name}. GBIF occurrence {key}, {GBIF_OCCURRENCE}{key}. {licence}."


def empty(status: str) -> dict[str, object]:
    """The columns of a hit without a record, saying why."""
    return dict.fromkeys(COLUMNS) | {"occurrence_status": status}


def _number(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None


class Occurrences:
    """GBIF occurrence records for hits, through a fetcher (``ImageFetcher`` or a server's)."""

    def __init__(self, fetcher, api: str):
        self.fetcher = fetcher
        self.api = api.rstrip("/")

    def url(self, key: str) -> str:
        return f"{self.api}/occurrence/{key}"

    def lookup(self, hits: pd.DataFrame, cancel: threading.Event | None = None,
               on_result: Callable[[int, dict], None] | None = None) -> pd.DataFrame:
        """One row per hit (indexed by hit id) with :data:`COLUMNS`; never raises for one bad record."""
        rows: dict[int, dict] = {}
        wanted = []
        by_id = {int(r["id"]): r for r in hits.to_dict("records")}
        for hit_id, row in by_id.items():
            key = occurrence_key(row)
            if key is None:
                rows[hit_id] = empty(NO_RECORD)
            else:
                wanted.append((hit_id, self.url(key)))
        for result in self.fetcher.fetch_many(wanted, variant=JSON, cancel=cancel):
            if result is None:
                continue
            hit_id = int(result.key)
            rows[hit_id] = self._row(result, by_id[hit_id])
            if on_result is not None:
                on_result(hit_id, rows[hit_id])
        for hit_id, _url in wanted:
            rows.setdefault(hit_id, empty("cancelled"))
        return pd.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS)).rename_axis("id")

    @staticmethod
    def _row(result: FetchResult, hit: Mapping) -> dict:
        if not result.ok:
            status = "record gone from GBIF" if result.status is FetchStatus.NOT_FOUND else result.message
            return empty(status or result.status.value)
        try:
            record = json.loads(result.data)
        except ValueError:
            return empty("GBIF sent malformed JSON")
        if not isinstance(record, Mapping):
            return empty("GBIF sent something other than a record")
        return from_record(record, hit)


def with_occurrences(hits: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``hits`` with the occurrence columns (from :meth:`Occurrences.lookup`) joined by id."""
    extra = table.reindex(hits["id"].astype(int).to_numpy())
    out = hits.reset_index(drop=True).copy()
    for col in COLUMNS:
        out[col] = extra[col].to_numpy() if col in extra else None
    return out


@dataclass(frozen=True)
class PlaceFilter:
    """Filters on the current results by what their occurrence records say. A hit whose record
    lacks the value asked about (no month, no coordinates, no licence) is left out while that
    filter is on."""

    months: tuple[int, int] = (1, 12)
    country: str | None = None
    reusable_only: bool = False
    box: tuple[float, float, float, float] | None = None     # south, west, north, east

    @property
    def active(self) -> bool:
        return self.months != (1, 12) or self.country is not None or self.reusable_only or self.box is not None

    def keep(self, table: pd.DataFrame) -> pd.Series:
        """Which rows of an occurrence table (indexed by hit id) pass."""
        ok = pd.Series(True, index=table.index)
        if self.months != (1, 12):
            month = pd.to_numeric(table["month"], errors="coerce")
            ok &= month.between(*self.months)
        if self.country is not None:
            ok &= table["country_code"] == self.country
        if self.reusable_only:
            ok &= table["license"].map(reusable)
        if self.box is not None:
            south, west, north, east = self.box
            lat = pd.to_numeric(table["latitude"], errors="coerce")
            lon = pd.to_numeric(table["longitude"], errors="coerce")
            ok &= lat.between(south, north) & lon.between(west, east)
        return ok.fillna(False).astype(bool)

    def describe(self) -> str:
        parts = []
        if self.months != (1, 12):
            parts.append(f"months {self.months[0]}-{self.months[1]}")
        if self.country:
            parts.append(f"country {self.country}")
        if self.reusable_only:
            parts.append("reusable licences only (CC0, CC BY)")
        if self.box:
            parts.append("inside the map's view")
        return ", ".join(parts)


def add_occurrences(hits: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``hits`` with :data:`COLUMNS`, looked up through this machine's fetcher (its host policies
    and cache) from ``settings.gbif_api`` (``BIOCLIP_NB_GBIF_API``)."""
    from .config import Settings
    from .images.fetch import machine_fetcher
    settings = settings or Settings.from_env()
    fetcher = machine_fetcher(settings)
    try:
        return with_occurrences(hits, Occurrences(fetcher, settings.gbif_api).lookup(hits))
    finally:
        fetcher.close()
