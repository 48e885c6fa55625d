"""A stand-in for GBIF's occurrence API on 127.0.0.1, with faults on demand and a request log.

``GET /v1/occurrence/<key>`` answers the record given for ``key``; a key's fault, if any:

``"404"``        not found             ``"429"``  429 with ``Retry-After: 1`` the first time, then the record
``"slow"``       waits ``hang`` seconds ``"malformed"``  ``application/json`` that is not JSON
``"html"``       an HTML page instead of JSON
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler

from .imagehost import LocalHTTP


def occurrence(key: int | str, lat: float | None, lon: float | None, date: str | None, country: str | None,
               licence: str | None = "http://creativecommons.org/licenses/by/4.0/legalcode",
               holder: str | None = "A. Naturalist", recorded_by: str | None = "A. Naturalist") -> dict:
    """A GBIF occurrence record as the API writes one (fields left out where None)."""
    record = {"key": int(key), "gbifID": str(key), "decimalLatitude": lat, "decimalLongitude": lon, "eventDate": date,
              "month": int(date[5:7]) if date and len(date) >= 7 else None, "countryCode": country,
              "license": licence, "rightsHolder": holder, "recordedBy": recorded_by,
              "datasetKey": "50c9509d-22c7-4a22-a47d-8c48425ef4a7", "basisOfRecord": "HUMAN_OBSERVATION",
              "media": [{"type": "StillImage", "license": licence, "rightsHolder": holder}] if licence else []}
    return {k: v for k, v in record.items() if v is not None}


class GbifApi(LocalHTTP):
    """Start with :meth:`start` (or as a context manager); ``api`` is ``http://127.0.0.1:PORT/v1``."""

    content_type = "application/json"

    def __init__(self, records: Mapping[str, dict], faults: Mapping[str, str] | None = None, hang: float = 30.0):
        super().__init__()
        self.records = {str(k): v for k, v in records.items()}
        self.faults = {str(k): v for k, v in (faults or {}).items()}
        self.hang = hang
        self._seen: set[str] = set()

    def start(self) -> GbifApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                api._logged(self, api._answer)

        self._serve(Handler)
        return self

    @property
    def api(self) -> str:
        return f"{self.base}/v1"

    def requests_for(self, key: str) -> int:
        return sum(r.path.endswith(f"/occurrence/{key}") for r in self.log)

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        prefix = "/v1/occurrence/"
        key = h.path[len(prefix):] if h.path.startswith(prefix) else None
        fault = self.faults.get(key or "")
        if fault == "slow":
            time.sleep(self.hang)
        if fault == "429":
            with self._lock:
                first = key not in self._seen
                self._seen.add(key)
            if first:
                return self._send(h, 429, b'{"error": "slow down"}', headers={"Retry-After": "1"})
        if key is None or fault == "404" or key not in self.records:
            return self._send(h, 404, b'{"error": "not found"}')
        if fault == "malformed":
            return self._send(h, 200, b'{"key": 1, "decimalLat')
        if fault == "html":
            return self._send(h, 200, b"<html>maintenance</html>", "text/html")
        self._send(h, 200, json.dumps(self.records[key]).encode())
