"""The HTTP JSON API of ``bioclip-nb serve`` (FastAPI; OpenAPI docs at ``/docs``).

FastAPI because it is the ecosystem's usual choice for a small typed JSON service: request
bodies are validated by pydantic (a malformed one gets a 422, not a crash), the OpenAPI page
comes free, and it runs on uvicorn, a single-process ASGI server that needs no proxy.

Closed by default: every ``/v1`` route needs the bearer token; image bodies are capped;
requests time out; more than ``max_concurrent`` at once get 503 with ``Retry-After``; no path
a client sends is ever opened (images are named by record id, and user URLs pass the address
guard); every error is ``{"error": kind, "message": ...}``, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import limits as lim
from .._version import __version__
from ..encoders.within import Within
from ..errors import AtlasError, EncoderUnavailableError, UnsupportedQueryError, UploadError
from ..images.fetch import FetchResult
from ..images.uploads import MAX_UPLOAD_BYTES, load_upload
from ..layout import Scope, display_name
from ..outputs.results import plain
from ..request import SearchRequest
from .bodycap import BodyCap
from .protocol import (
    API,
    ATLASES,
    FETCH_HEADER,
    encoding_to_json,
    error_body,
    hits_to_json,
    predictions_to_json,
    vector_to_json,
)
from .warm import Served, Warm

log = logging.getLogger("bioclip_nb.service")


@dataclass(frozen=True)
class Limits:
    """How much one server takes on."""

    max_upload: int = MAX_UPLOAD_BYTES
    max_concurrent: int = 32
    timeout: float = 120.0


RecordId = Annotated[int, Field(ge=lim.MIN_ID, le=lim.MAX_ID, description="a record id (0 to 2**31-1)")]
Vector = Annotated[list[float], Field(min_length=1, max_length=lim.MAX_DIM)]


class SearchBody(BaseModel):
    vectors: Annotated[list[Vector], Field(min_length=1, max_length=lim.MAX_BATCH)] | Vector | None = Field(
        None, description=f"one vector or a batch of up to {lim.MAX_BATCH}; L2-normalised by the server")
    query_id: str | None = Field(None, max_length=128, description="the query_id an /encode answer gave, instead of vectors")
    top_n: int = Field(lim.DEFAULT_TOP_N, ge=lim.MIN_TOP_N, le=lim.MAX_TOP_N)
    nprobe: int | None = Field(None, ge=lim.MIN_NPROBE, le=lim.MAX_NPROBE,
                               description=f"cells to scan, at most the atlas's nlist (default min({lim.DEFAULT_NPROBE}, nlist))")
    scope: str = Scope.ALL.value
    taxon: dict[str, str] | None = None
    model: str | None = Field(None, description="the model the vectors came from (checked against the atlas)")
    fold: bool = Field(False, description="fold copies of one image and refill to top_n distinct images")
    exact: bool | None = Field(None, description="rank with the full vectors (default: whenever the atlas has them); "
                                                 "false ranks by the PQ codes alone")


class WithinBody(BaseModel):
    rank: str = Field(..., max_length=16)
    names: Annotated[list[Annotated[str, Field(max_length=200)]], Field(min_length=1, max_length=100_000)]
    label: str | None = Field(None, max_length=200)


class PredictBody(BaseModel):
    embedding: Vector
    within: WithinBody | None = Field(None, description='{"rank": "genus", "names": ["Vulpes"], "label": "genus Vulpes"}')
    k: int = Field(5, ge=1, le=lim.MAX_PREDICTIONS)


class TextBody(BaseModel):
    text: str = Field(..., min_length=1, max_length=lim.MAX_TEXT)


class UrlBody(BaseModel):
    url: str = Field(..., min_length=1, max_length=lim.MAX_URL, description="an http(s) URL on a public host")
    variant: Literal["thumb", "full"] = "full"


class IdsBody(BaseModel):
    ids: list[RecordId] = Field(..., max_length=lim.MAX_IDS)


class FiguresBody(BaseModel):
    vector: Vector | Annotated[list[float], Field(max_length=0)]
    nprobe: int | None = Field(None, ge=lim.MIN_NPROBE, le=lim.MAX_NPROBE)
    top_n: int = Field(lim.DEFAULT_TOP_N, ge=lim.MIN_TOP_N, le=lim.MAX_TOP_N)
    scope: str = Field(Scope.ALL.value, max_length=16)
    taxon: dict[str, str] | None = None
    hit_ids: list[RecordId] = Field([], max_length=lim.MAX_TOP_N)
    hit_similarity: list[float] = Field([], max_length=lim.MAX_TOP_N)


class ErrorBody(BaseModel):
    """Every error the server answers (never a traceback)."""

    error: str = Field(..., description="a short kind: unauthorised, not_found, too_large, invalid_request, busy, ...")
    message: str = Field(..., description="what went wrong, written for a person")
    fetch: dict | None = Field(None, description="for a failed image fetch: its status and message")


def _request(body: SearchBody | FiguresBody) -> SearchRequest:
    """The body's search settings as the one ``SearchRequest`` (checked as everywhere else)."""
    return SearchRequest(**{name: getattr(body, name) for name in SearchRequest.__dataclass_fields__ if name in type(body).model_fields
                            and getattr(body, name) is not None})


def _error(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


#: The answers every ``/v1`` route may give besides its own, declared in the OpenAPI document.
ROUTE_ERRORS = {
    400: _error("the body is not valid JSON"),
    401: _error("no bearer token, or a wrong one"),
    404: _error("a record that is not in this atlas, or a query id the server does not know"),
    413: _error("the request body is over the route's cap (limits.BODY_CAPS)"),
    422: _error("the request is malformed, or a value is out of its legal range"),
    503: _error("the server is busy (Retry-After says when to retry) or its encoder is unavailable"),
    504: _error("the request took longer than the server's time limit"),
}
#: An image answer: the bytes, or why there are none.
IMAGE_ANSWERS = {
    200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                      "image/png": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the image (its fetch details in the X-Bioclip-Fetch header)"},
    404: _error("the record is not in this atlas, or has no image"),
    502: _error("the image host failed (gone, too slow, not an image, refused by policy or the address guard)"),
}


def create_app(warm: Warm, token: str, limits: Limits | None = None) -> FastAPI:
    """The application serving ``warm`` to holders of ``token``."""
    limits = limits or Limits()
    app = FastAPI(title="bioclip-nb", version=__version__,
                  description="One warm BioCLIP 2 encoder, atlas and image fetcher for every kernel and command.")
    bearer = HTTPBearer(auto_error=False)

    def authorised(cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if cred is None or not secrets.compare_digest(cred.credentials.encode(), token.encode()):
            raise HTTPException(401, "a valid bearer token is required (see bioclip-nb status)",
                                headers={"WWW-Authenticate": "Bearer"})

    listing = APIRouter(prefix=API, dependencies=[Depends(authorised)], responses=ROUTE_ERRORS)
    _listing(listing, warm)
    app.include_router(listing)
    # the default atlas at /v1/..., and every atlas (the default too) at /v1/atlases/KEY/...
    for prefix, served in [(API, warm.default)] + [(f"{API}{ATLASES}/{key}", s) for key, s in warm.served.items()]:
        router = APIRouter(prefix=prefix, dependencies=[Depends(authorised)], responses=ROUTE_ERRORS,
                           tags=[served.key] if prefix != API else None)
        _routes(router, served, warm, limits)
        app.include_router(router, include_in_schema=prefix == API)
    unknown = APIRouter(prefix=f"{API}{ATLASES}", dependencies=[Depends(authorised)], include_in_schema=False)

    @unknown.api_route("/{key}/{rest:path}", methods=["GET", "POST"])
    def no_such_atlas(key: str, rest: str) -> None:
        raise LookupError(f"this server holds no atlas {key!r} (it holds: {', '.join(warm.served)}); see /v1/atlases")

    app.include_router(unknown)
    _errors(app)
    _guard_load(app, warm, limits)
    app.add_middleware(BodyCap, prefix=API, caps={**lim.BODY_CAPS, "/encode": limits.max_upload}, default=lim.DEFAULT_BODY_CAP)
    return app


def _listing(router: APIRouter, warm: Warm) -> None:
    @router.get(ATLASES)
    def atlases() -> list[dict]:
        """The atlases this server holds, the default first: key, model, its name, records, dim, encoder state."""
        return [{"key": key, "model": s.atlas.model, "model_name": display_name(s.atlas.model), "path": str(s.atlas.path),
                 "count": s.atlas.count, "dim": s.atlas.dim, "encoder": s.slot.state} for key, s in warm.served.items()]


def _routes(router: APIRouter, served: Served, warm: Warm, limits: Limits) -> None:
    atlas = served.atlas

    @router.get("/health")
    def health() -> dict:
        """Alive; whether this atlas's encoder is loaded; how requests were batched."""
        return {"status": "ok", "version": __version__, "in_flight": warm.in_flight, "usage": warm.fetcher.usage(),
                **served.health()}

    @router.get("/info")
    def info() -> dict:
        """The atlas: path, model, count, dim, metric, cells, fingerprint, scope counts if known."""
        return {"path": str(atlas.path), "model": atlas.model, "count": atlas.count, "dim": atlas.dim,
                "metric": atlas.metric, "nlist": atlas.nlist, "fingerprint": atlas.fingerprint,
                "content_fingerprint": atlas.content_fingerprint, "scope_counts": atlas.scope_counts(compute=False)}

    @router.get("/scope-counts")
    def scope_counts(compute: bool = True) -> dict | None:
        """Records in each scope (counted once per atlas)."""
        return atlas.scope_counts(compute=compute)

    @router.get("/taxon-values")
    def taxon_values(rank: str = Query(..., max_length=16), prefix: str = Query("", max_length=200),
                     limit: int = Query(50, ge=1, le=1000)) -> list[str]:
        """Names present at a rank, most frequent first."""
        return atlas.taxon_values(rank, prefix, limit)

    @router.post("/encode", openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}}})
    async def encode(request: Request, k: int = Query(5, ge=1, le=50)) -> dict:
        """Embedding and predictions at every rank of one image (the body: its bytes)."""
        data = await _read_capped(request, limits.max_upload)
        image = await run_in_threadpool(load_upload, data)
        query_id, enc = await run_in_threadpool(served.encode, data, image, limits.timeout)
        return encoding_to_json(enc, query_id)

    @router.post("/encode-text")
    def encode_text(body: TextBody) -> dict:
        """A name or description as a query vector."""
        vector = served.encoder(limits.timeout).encode_text(body.text)
        return {"model_id": atlas.model, "embedding": vector_to_json(vector)}

    @router.post("/predict")
    def predict(body: PredictBody) -> dict:
        """Predictions at every rank for an embedding, over the Tree of Life or only ``within``."""
        within = Within.from_json(body.within.model_dump()) if body.within else None
        embedding = np.asarray(body.embedding, dtype=np.float64)
        if embedding.shape != (atlas.dim,) or not np.isfinite(embedding).all() or not np.abs(embedding).max() > 0:
            raise ValueError(f"embedding must be {atlas.dim} finite numbers, not all zero")
        preds = served.encoder(limits.timeout).predict(embedding.astype(np.float32), within, body.k)
        return predictions_to_json(preds)

    @router.post("/search")
    def search(body: SearchBody) -> dict:
        """Nearest records to vectors (or to a query encoded earlier), with their metadata."""
        vectors, model = body.vectors, body.model
        if (vectors is None) == (body.query_id is None):
            raise ValueError("give exactly one of vectors or query_id")
        if body.query_id is not None:
            enc = served.encoding(body.query_id)
            if enc is None:
                raise LookupError(f"query {body.query_id} is not known here (the server forgets old queries); encode it again")
            vectors, model = enc.embedding, enc.model_id
        return hits_to_json(_request(body).run(atlas, vectors, model))

    @router.get("/records/{record_id}/image", response_class=Response, responses=IMAGE_ANSWERS)
    def record_image(record_id: RecordIdPath, variant: Literal["thumb", "full"] = "thumb") -> Response:
        """A record's image through the machine's one fetcher (its policy, budget and cache)."""
        url = _record_url(atlas, record_id)
        if url is None:
            message = f"record {record_id} has no image: its source gave no URL"
            return JSONResponse(error_body(message, "not_found", fetch={"status": "no_url", "message": message}),
                                status_code=404)
        return _image_response(warm.fetcher.fetch(url, variant=variant, key=record_id))

    @router.get("/records/{record_id}/vector")
    def record_vector(record_id: RecordIdPath) -> dict:
        """A record's full vector when the atlas has one, else null."""
        _in_atlas(atlas, record_id)
        vec = atlas.stored_vector(record_id)
        return {"vector": vector_to_json(vec) if vec is not None else None}

    @router.post("/fetch-url", response_class=Response, responses=IMAGE_ANSWERS)
    def fetch_url(body: UrlBody) -> Response:
        """An image URL a person typed: public addresses only (see ``images.guard``)."""
        return _image_response(warm.fetcher.fetch_user_url(body.url, variant=body.variant))

    @router.post("/lookup")
    def lookup(body: IdsBody) -> dict:
        """The metadata rows of records, in the order given (as ``Atlas.lookup``)."""
        for record_id in body.ids:
            _in_atlas(atlas, record_id)
        return hits_to_json(atlas.lookup(body.ids))

    @router.post("/occurrences")
    def occurrences(body: IdsBody) -> dict:
        """GBIF occurrence details (place, date, licence) of records, through the machine's fetcher."""
        from ..occurrences import Occurrences
        rows = atlas.lookup(body.ids)
        table = Occurrences(warm.fetcher, warm.settings.gbif_api).lookup(rows)
        return {"ids": [int(i) for i in table.index],
                "rows": [[plain(v, digits=None) for v in row] for row in table.itertuples(index=False, name=None)],
                "columns": list(table.columns)}

    @router.post("/figures")
    def figures(body: FiguresBody) -> dict:
        """The Plots tab's cell and recall pictures (PNG, base64) and its note."""
        from ..insight.figures import search_figures
        request = _request(body).for_atlas(atlas.nlist)
        if not body.vector:
            raise ValueError("vector: the query's embedding is needed for the figures")
        figs = search_figures(atlas, body.vector, request, _hits(body.hit_ids, body.hit_similarity))
        return {"cells_png": base64.b64encode(figs.cells_png).decode(), "recall_png": base64.b64encode(figs.recall_png).decode(),
                "note": figs.note}

    @router.post("/map", response_class=Response,
                 responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                                  "description": "the atlas map as PNG"}})
    def atlas_map(body: FiguresBody) -> Response:
        """The atlas map with the query's cells and hits (PNG)."""
        from ..insight.figures import map_figure
        request = _request(body).for_atlas(atlas.nlist)
        png = map_figure(atlas, body.vector or None, request.nprobe, _hits(body.hit_ids, body.hit_similarity))
        return Response(png, media_type="image/png")


RecordIdPath = Annotated[int, Path(ge=lim.MIN_ID, le=lim.MAX_ID, description="a record id (0 to 2**31-1)")]


def _in_atlas(atlas, record_id: int) -> None:
    if not 0 <= record_id < atlas.count:
        raise LookupError(f"record {record_id} is not in this atlas (ids run from 0 to {atlas.count - 1})")


def _record_url(atlas, record_id: int) -> str | None:
    """A record's image URL, None when it has none; ``LookupError`` (404) when it is not in the atlas."""
    _in_atlas(atlas, record_id)
    rows = atlas.lookup([record_id])
    if not len(rows) or pd.isna(rows["id"].iloc[0]):
        raise LookupError(f"record {record_id} is not in this atlas")
    url = rows["url"].iloc[0]
    if url is None or (isinstance(url, float) and np.isnan(url)) or not str(url).strip():
        return None
    return str(url)


def _hits(ids: list[int], similarity: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"id": pd.Series(ids, dtype="int64"), "similarity": pd.Series(similarity, dtype="float32")})


def _image_response(result: FetchResult) -> Response:
    meta = {"status": result.status.value, "message": result.message, "size": result.size,
            "from_cache": result.from_cache, "nbytes": result.nbytes}
    if result.ok:
        kind = "image/png" if result.data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
        return Response(result.data, media_type=kind, headers={FETCH_HEADER: json.dumps(meta)})
    return JSONResponse(error_body(result.message or result.status.value, "fetch_failed", fetch=meta), status_code=502)


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the image is larger than {limit / 2**20:.0f} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the image is larger than {limit / 2**20:.0f} MB")
        chunks.append(chunk)
    if not size:
        raise UploadError("the request body is empty: send the image's bytes")
    return b"".join(chunks)


#: Exception -> (HTTP status, error kind). The message is the exception's own (written for users).
_STATUS = [
    (UploadError, 422, "bad_image"), (AtlasError, 422, "invalid"), (UnsupportedQueryError, 422, "unsupported"),
    (EncoderUnavailableError, 503, "encoder_unavailable"),
    (TimeoutError, 504, "timeout"), (LookupError, 404, "not_found"), (ValueError, 422, "invalid"),
]


def _errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        kind = {400: "bad_request", 401: "unauthorised", 404: "not_found", 405: "method_not_allowed",
                413: "too_large"}.get(exc.status_code, "http")
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse(error_body("; ".join(parts) or "invalid request", "invalid_request"), status_code=422)

    def handler(status: int, kind: str):
        async def answer(_request, exc: Exception):
            return JSONResponse(error_body(str(exc), kind), status_code=status)
        return answer

    for cls, status, kind in _STATUS:
        app.add_exception_handler(cls, handler(status, kind))

    @app.exception_handler(Exception)
    async def unexpected(_request, exc: Exception):
        log.error("unexpected error", exc_info=exc)       # the traceback stays in the server's log
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); the server log has details", "internal"),
                            status_code=500)


def _guard_load(app: FastAPI, warm: Warm, limits: Limits) -> None:
    """Count requests (for idle shutdown), refuse beyond ``max_concurrent``, time out."""

    @app.middleware("http")
    async def load(request: Request, call_next):
        if not request.url.path.startswith(API) or request.url.path == f"{API}/health":
            return await call_next(request)
        if warm.in_flight >= limits.max_concurrent:
            return JSONResponse(error_body(f"the server is busy ({warm.in_flight} requests running); retry shortly", "busy"),
                                status_code=503, headers={"Retry-After": "1"})
        warm.begin()
        try:
            return await asyncio.wait_for(call_next(request), limits.timeout)
        except TimeoutError:
            return JSONResponse(error_body(f"the request took longer than {limits.timeout:g} s", "timeout"), status_code=504)
        finally:
            warm.end()
