"""Clients of ``bioclip-nb serve``: the same faces as ``Atlas``, the encoder and the fetcher.

>>> import bioclip_nb
>>> conn = bioclip_nb.connect()                  # the server recorded under BIOCLIP_NB_HOME
>>> hits = conn.atlas.search(conn.encoder.encode(image).embedding, top_n=10)

A process using them holds no model, no index and no metadata: only HTTP connections.
Errors come back as the exceptions the in-process code raises (``UploadError``,
``ValueError``, ``EncoderUnavailableError``), and a server that does not answer as
``ServerUnavailableError`` (an ``OSError``), so callers handle both ways alike.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import requests
from PIL import Image

from .. import limits
from .._version import __version__
from ..config import Settings
from ..encoders.base import Encoding
from ..encoders.within import Within
from ..errors import (
    AtlasError,
    EncoderUnavailableError,
    ServerError,
    ServerUnavailableError,
    UnsupportedQueryError,
    UploadError,
)
from ..images.fetch import FetchResult, FetchStatus, as_they_come, unless_cancelled
from ..insight.figures import SearchFigures
from ..layout import Scope
from ..request import SearchRequest
from .protocol import API, ATLASES, FETCH_HEADER, encoding_from_json, hits_from_json, predictions_from_json, vector_to_json
from .statefile import read_record

#: Error kinds the server sends, as the exceptions in-process code raises.
_RAISE = {"bad_image": UploadError, "invalid": ValueError, "invalid_request": ValueError,
          "encoder_unavailable": EncoderUnavailableError, "not_found": LookupError,
          "unsupported": UnsupportedQueryError}


class Client:
    """One server's HTTP API. Thread-safe (a pooled ``requests.Session``)."""

    def __init__(self, url: str, token: str | None, timeout: float = 300.0, retries: int = 3, atlas: str | None = None):
        """``atlas``: the key of one of the server's atlases (``/v1/atlases``); None, its default one."""
        self.url = url.rstrip("/")
        self.atlas = atlas
        self._base = f"{ATLASES}/{atlas}" if atlas else ""
        self.timeout = timeout
        self.retries = retries
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": f"bioclip-nb/{__version__}"})
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ transport
    def request(self, method: str, path: str, ok_statuses: tuple[int, ...] = (200,), scoped: bool = True,
                **kwargs) -> requests.Response:
        """One call (below this client's atlas when ``scoped``); busy answers (503 with Retry-After)
        are retried; errors raised as ours."""
        kwargs.setdefault("timeout", self.timeout)
        for attempt in range(self.retries + 1):
            try:
                resp = self.session.request(method, f"{self.url}{API}{self._base if scoped else ''}{path}", **kwargs)
            except requests.ConnectionError as exc:
                raise ServerUnavailableError(f"the bioclip-nb server at {self.url} is not answering ({_reason(exc)})",
                                             "unavailable") from None
            except requests.Timeout:
                raise ServerError(f"the bioclip-nb server at {self.url} did not answer within {kwargs['timeout']:g} s",
                                  "timeout") from None
            except requests.RequestException as exc:
                raise ServerUnavailableError(f"the bioclip-nb server at {self.url} could not be reached ({exc})",
                                             "unavailable") from None
            if resp.status_code in ok_statuses:
                return resp
            body = _json(resp)
            if resp.status_code == 503 and body.get("error") == "busy" and attempt < self.retries:
                time.sleep(min(5.0, float(resp.headers.get("Retry-After", "1") or 1)))
                continue
            break
        raise _error(resp, body)

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, payload: dict, **kwargs):
        return self.request("POST", path, json=payload, **kwargs).json()

    # ------------------------------------------------------------------ API
    def atlases(self) -> list[dict]:
        """The server's atlases, its default first: key, model, model_name, path, count, dim, encoder."""
        resp = self.request("GET", ATLASES, ok_statuses=(200, 404), scoped=False)
        if resp.status_code == 404:                   # a server from before several atlases: its one
            return [{"key": None, **self.info()}]
        return resp.json()

    def health(self) -> dict:
        """Whether the server is up and its encoder loaded (``encoder``: loading, ready, unavailable)."""
        return self.get("/health")

    def info(self) -> dict:
        return self.get("/info")

    def encode(self, data: bytes, k: int = 5) -> tuple[str, Encoding]:
        """``(query id, Encoding)`` of an image file's bytes."""
        body = self.request("POST", "/encode", params={"k": k}, data=data,
                            headers={"Content-Type": "application/octet-stream"}).json()
        return body["query_id"], encoding_from_json(body)

    def encode_text(self, text: str) -> np.ndarray:
        return np.asarray(self.post("/encode-text", {"text": text})["embedding"], dtype=np.float32)

    def search(self, vectors=None, query_id: str | None = None, top_n: int = limits.DEFAULT_TOP_N, nprobe: int | None = None,
               scope: Scope | str = Scope.ALL, taxon=None, model: str | None = None, fold: bool = False,
               exact: bool | None = None) -> pd.DataFrame:
        """Hits as ``Atlas.search`` gives them, for vectors or a query encoded earlier."""
        request = SearchRequest(top_n=top_n, nprobe=nprobe, scope=scope, taxon=taxon, fold=bool(fold), exact=exact)
        payload = {**request.to_json(), "model": model, "query_id": query_id}      # refused here as the server would
        if vectors is not None:
            arr = np.asarray(vectors, dtype=np.float32)
            payload["vectors"] = arr.tolist() if arr.ndim == 2 else vector_to_json(arr)
        return hits_from_json(self.post("/search", payload))

    def image(self, record_id: int, variant: str = "thumb") -> FetchResult:
        """A record's image through the server's fetcher, as a ``FetchResult`` (never raises for a bad host)."""
        return self._fetched(record_id, None, variant, lambda: self.request(
            "GET", f"/records/{int(record_id)}/image", params={"variant": variant}, ok_statuses=(200, 404, 502)))

    def fetch_url(self, url: str, variant: str = "full") -> FetchResult:
        """An image URL a person typed, fetched by the server (public addresses only)."""
        return self._fetched(None, url, variant, lambda: self.request(
            "POST", "/fetch-url", json={"url": url, "variant": variant}, ok_statuses=(200, 502)))

    def _fetched(self, key, url, variant, call) -> FetchResult:
        try:
            resp = call()
        except (ServerError, LookupError) as exc:
            return FetchResult(key, url, FetchStatus.ERROR, message=str(exc), variant=variant)
        if resp.status_code == 200:
            meta = json.loads(resp.headers.get(FETCH_HEADER, "{}"))
            size = tuple(meta["size"]) if meta.get("size") else None
            return FetchResult(key, url, FetchStatus.OK, data=resp.content, size=size, variant=variant,
                               from_cache=bool(meta.get("from_cache")), nbytes=int(meta.get("nbytes") or 0))
        body = _json(resp)
        meta = body.get("fetch") or {"status": "error", "message": body.get("message", f"HTTP {resp.status_code}")}
        try:
            status = FetchStatus(meta.get("status", "error"))
        except ValueError:
            status = FetchStatus.ERROR
        return FetchResult(key, url, status, message=meta.get("message", ""), variant=variant)


@dataclass
class RemoteAtlas:
    """The face of ``Atlas`` the CLI, the dashboard and the tutorials use, answered by a server."""

    client: Client
    path: Path
    model: str
    count: int
    dim: int
    metric: str
    nlist: int
    fingerprint: str
    content_fingerprint: str

    @classmethod
    def of(cls, client: Client) -> RemoteAtlas:
        i = client.info()
        return cls(client, Path(i["path"]), i["model"], int(i["count"]), int(i["dim"]), i["metric"], int(i["nlist"]),
                   i["fingerprint"], i.get("content_fingerprint") or i["fingerprint"])

    def __repr__(self) -> str:
        return f"RemoteAtlas({str(self.path)!r} at {self.client.url}, {self.count:,} records, model {self.model!r})"

    def __enter__(self) -> RemoteAtlas:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release here (the server keeps the atlas open for everybody)."""

    def search(self, vectors, top_n: int = limits.DEFAULT_TOP_N, nprobe: int | None = None, scope: Scope | str = Scope.ALL, taxon=None,
               model: str | None = None, fold: bool = False, exact: bool | None = None) -> pd.DataFrame:
        """See ``Atlas.search`` (the settings are checked here as the local atlas checks them)."""
        request = SearchRequest.for_nlist(self.nlist, top_n=top_n, nprobe=nprobe, scope=scope, taxon=taxon, fold=bool(fold),
                                          exact=exact)
        return self.client.search(vectors, model=model, **request.search_args())

    def scope_counts(self, compute: bool = True) -> dict[str, int] | None:
        return self.client.get("/scope-counts", params={"compute": str(bool(compute)).lower()})

    def taxon_values(self, rank, prefix: str = "", limit: int = 50) -> list[str]:
        return self.client.get("/taxon-values", params={"rank": str(getattr(rank, "value", rank)), "prefix": prefix,
                                                        "limit": limit})

    def lookup(self, ids) -> pd.DataFrame:
        """See ``Atlas.lookup`` (the server answers up to ``limits.MAX_IDS`` ids a request)."""
        ids = [int(i) for i in np.asarray(ids, dtype=np.int64).ravel()]
        frames = [hits_from_json(self.client.post("/lookup", {"ids": ids[i:i + limits.MAX_IDS]}))
                  for i in range(0, len(ids), limits.MAX_IDS)]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else (frames[0] if frames else self._empty())

    def _empty(self) -> pd.DataFrame:
        return hits_from_json(self.client.post("/lookup", {"ids": []}))

    def stored_vector(self, record_id: int) -> np.ndarray | None:
        vec = self.client.get(f"/records/{int(record_id)}/vector")["vector"]
        return None if vec is None else np.asarray(vec, dtype=np.float32)

    def info(self) -> dict:
        return self.client.info()


class RemoteEncoder:
    """The encoder's face (``encode``, ``encode_text``), answered by the server's one model."""

    def __init__(self, client: Client, model_id: str, dim: int):
        self.client, self.model_id, self.dim = client, model_id, dim

    def encode(self, image: Image.Image, k: int = 5) -> Encoding:
        """Embedding and predictions of a picture (sent losslessly as PNG)."""
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return self.client.encode(buf.getvalue(), k)[1]

    @property
    def runtime(self) -> str:
        """``server (<runtime>)``: the server's encoder runs there, as its health says."""
        return f"server ({self.client.health().get('runtime') or 'loading'})"

    @property
    def runtime_note(self) -> str:
        """The server's own note on its runtime."""
        return self.client.health().get("runtime_note") or "the server's encoder is still loading"

    def encode_bytes(self, data: bytes, k: int = 5) -> Encoding:
        """Embedding and predictions of an image file's bytes (decoded, and refused, by the server)."""
        return self.client.encode(data, k)[1]

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """Embeddings of several pictures, one request each (the server batches what arrives together)."""
        return np.stack([self.encode(image).embedding for image in images]) if images else np.zeros((0, self.dim), np.float32)

    def encode_text(self, text: str) -> np.ndarray:
        return self.client.encode_text(text)

    def predict(self, embedding: np.ndarray, within: Within | None = None, k: int = 5) -> dict:
        """See ``BioClipEncoder.predict`` (answered by the server's model)."""
        body = self.client.post("/predict", {"embedding": vector_to_json(embedding), "k": k,
                                             "within": within.to_json() if within is not None else None})
        return predictions_from_json(body)


class RemoteFetcher:
    """The fetcher's face for result images: each is fetched by the server under the machine's
    one host policy. ``key`` must be the record id (the server looks its URL up itself)."""

    def __init__(self, client: Client, workers: int = 6):
        self.client = client
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bioclip-nb-remote")

    def fetch(self, url: str | None, variant: str = "thumb", key: object = None,
              cancel: threading.Event | None = None) -> FetchResult:
        if key is None:
            return FetchResult(key, url, FetchStatus.NO_URL, message="no record id to fetch", variant=variant)
        return _with_url(self.client.image(int(key), variant), url)

    def fetch_many(self, urls: Iterable[tuple[object, str | None]], variant: str = "thumb",
                   cancel: threading.Event | None = None,
                   on_result: Callable[[FetchResult], None] | None = None) -> Iterator[FetchResult]:
        futures = [self._pool.submit(unless_cancelled, self.fetch, key, url, variant, cancel) for key, url in urls]
        return as_they_come(futures, on_result)

    def fetch_user_url(self, url: str | None, variant: str = "full", key: object = None,
                       cancel: threading.Event | None = None) -> FetchResult:
        if not (url or "").strip():
            return FetchResult(key, url, FetchStatus.NO_URL, message="no URL was given", variant=variant)
        return self.client.fetch_url(url.strip(), variant)

    def usage(self) -> dict:
        return self.client.health().get("usage", {})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RemoteOccurrences:
    """``occurrences.Occurrences``'s face: the server looks the records up (its fetcher, its cache)."""

    def __init__(self, client: Client):
        self.client = client

    def lookup(self, hits: pd.DataFrame, cancel: threading.Event | None = None, on_result=None) -> pd.DataFrame:
        body = self.client.post("/occurrences", {"ids": [int(i) for i in hits["id"]]})
        table = pd.DataFrame(body["rows"], columns=body["columns"], index=pd.Index(body["ids"], name="id"))
        if on_result is not None:
            for hit_id, row in zip(table.index, table.to_dict("records")):
                on_result(int(hit_id), row)
        return table


class RemoteFigures:
    """The Plots tab's pictures, drawn by the server (which holds the index)."""

    def __init__(self, client: Client):
        self.client = client

    def _payload(self, vector, request: SearchRequest, hits) -> dict:
        hits = hits if hits is not None else pd.DataFrame({"id": [], "similarity": []})
        return {"vector": vector_to_json(vector) if vector is not None else [], "nprobe": request.nprobe,
                "top_n": request.top_n, "scope": request.scope, "taxon": request.taxon,
                "hit_ids": [int(i) for i in hits["id"]], "hit_similarity": [float(s) for s in hits["similarity"]]}

    def search(self, vector, request: SearchRequest, hits: pd.DataFrame) -> SearchFigures:
        body = self.client.post("/figures", self._payload(vector, request, hits))
        return SearchFigures(base64.b64decode(body["cells_png"]), base64.b64decode(body["recall_png"]), body["note"])

    def map(self, vector, nprobe: int, hits: pd.DataFrame | None) -> bytes:
        return self.client.request("POST", "/map", json=self._payload(vector, SearchRequest(nprobe=nprobe), hits)).content


@dataclass
class Connection:
    """A server's atlas, encoder, fetcher and figures, ready to hand to code written for local ones."""

    client: Client
    atlas: RemoteAtlas
    encoder: RemoteEncoder
    fetcher: RemoteFetcher
    figures: RemoteFigures
    occurrences: RemoteOccurrences

    @property
    def atlas_key(self) -> str | None:
        """Which of the server's atlases this connection searches (None: its default)."""
        return self.client.atlas

    def close(self) -> None:
        self.fetcher.close()
        self.client.close()


def connect(url: str | None = None, token: str | None = None, settings: Settings | None = None,
            timeout: float = 300.0, atlas: str | None = None) -> Connection:
    """Connect to a bioclip-nb server: ``url`` (else ``BIOCLIP_NB_SERVER``, else the one recorded
    under ``BIOCLIP_NB_HOME``), to its atlas ``atlas`` (a key of ``Client.atlases()``; None: the
    default). Raises ``ServerUnavailableError`` if none answers, ``ServerError`` (not_found) for
    an atlas it does not hold."""
    url, token = resolve(url, token, settings)
    client = Client(url, token, timeout=timeout, atlas=atlas)
    atlas = RemoteAtlas.of(client)
    return Connection(client, atlas, RemoteEncoder(client, atlas.model, atlas.dim), RemoteFetcher(client),
                      RemoteFigures(client), RemoteOccurrences(client))


def resolve(url: str | None = None, token: str | None = None, settings: Settings | None = None) -> tuple[str, str | None]:
    """``(url, token)`` of the server to use; the token from the argument, the environment, or
    the record of the server started under ``BIOCLIP_NB_HOME`` when its address matches."""
    settings = settings or Settings.from_env()
    url = url or settings.server
    record = read_record(settings.home)
    if url is None:
        if record is None:
            raise ServerUnavailableError("no bioclip-nb server is running here: start one with bioclip-nb serve "
                                         "(or name one with BIOCLIP_NB_SERVER)", "unavailable")
        url = record.url
    token = token or settings.token or (record.token if record is not None and _same(record.url, url) else None)
    return url.rstrip("/"), token


def _same(a: str, b: str) -> bool:
    return a.rstrip("/").replace("localhost", "127.0.0.1") == b.rstrip("/").replace("localhost", "127.0.0.1")


def _json(resp: requests.Response) -> dict:
    try:
        body = resp.json()
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}


def _error(resp: requests.Response, body: dict) -> Exception:
    message = body.get("message") or f"HTTP {resp.status_code} from the bioclip-nb server"
    kind = body.get("error", "http")
    if kind == "invalid" and "built with" in message:
        return AtlasError(message)
    cls = _RAISE.get(kind)
    if cls is not None:
        return cls(message)
    if kind == "unauthorised":
        message = (f"the bioclip-nb server at {resp.url.split(API)[0]} refused the token: set BIOCLIP_NB_TOKEN "
                   "(or BIOCLIP_NB_TOKEN_FILE) to the token its owner gives you")
    return ServerError(message, kind, resp.status_code)


def _reason(exc: Exception) -> str:
    text = str(exc)
    for key in ("Connection refused", "Name or service not known", "timed out", "Connection reset",
                "Remote end closed connection"):
        if key in text:
            return key.lower()
    return "connection failed"


def _with_url(result: FetchResult, url: str | None) -> FetchResult:
    return replace(result, url=url) if url is not None else result

