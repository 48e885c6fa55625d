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

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..encoders.within import Within
from ..errors import AtlasError, EncoderUnavailableError, UploadError
from ..images.fetch import FetchResult
from ..images.uploads import MAX_UPLOAD_BYTES, load_upload
from ..layout import Scope
from ..results import plain
from .protocol import (
    API,
    FETCH_HEADER,
    encoding_to_json,
    error_body,
    hits_to_json,
    predictions_to_json,
    vector_to_json,
)
from .warm import Warm

log = logging.getLogger("bioclip_nb.service")


@dataclass(frozen=True)
class Limits:
    """How much one server takes on."""

    max_upload: int = MAX_UPLOAD_BYTES
    max_concurrent: int = 32
    timeout: float = 120.0


class SearchBody(BaseModel):
    vectors: list[list[float]] | list[float] | None = Field(None, description="one vector or a batch; L2-normalised by the server")
    query_id: str | None = Field(None, description="the query_id an /encode answer gave, instead of vectors")
    top_n: int = 10
    nprobe: int | None = Field(None, description="cells to scan (default min(16, nlist))")
    scope: str = Scope.ALL.value
    taxon: dict[str, str] | None = None
    model: str | None = Field(None, description="the model the vectors came from (checked against the atlas)")
    fold: bool = Field(False, description="fold copies of one image and refill to top_n distinct images")
    exact: bool | None = Field(None, description="rank with the full vectors (default: whenever the atlas has them); "
                                                 "false ranks by the PQ codes alone")


class PredictBody(BaseModel):
    embedding: list[float]
    within: dict | None = Field(None, description='{"rank": "genus", "names": ["Vulpes"], "label": "genus Vulpes"}')
    k: int = Field(5, ge=1, le=50)


class TextBody(BaseModel):
    text: str


class UrlBody(BaseModel):
    url: str
    variant: str = "full"


class IdsBody(BaseModel):
    ids: list[int] = Field(..., max_length=1000)


class FiguresBody(BaseModel):
    vector: list[float]
    nprobe: int
    top_n: int = 10
    scope: str = Scope.ALL.value
    taxon: dict[str, str] | None = None
    hit_ids: list[int] = []
    hit_similarity: list[float] = []


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

    router = APIRouter(prefix=API, dependencies=[Depends(authorised)])
    _routes(router, warm, limits)
    app.include_router(router)
    _errors(app)
    _guard_load(app, warm, limits)
    return app


def _routes(router: APIRouter, warm: Warm, limits: Limits) -> None:
    atlas = warm.atlas

    @router.get("/health")
    def health() -> dict:
        """Alive; whether the encoder is loaded; how requests were batched."""
        stats = warm.batch_stats
        return {"status": "ok", "version": __version__, "encoder": warm.encoder_state, "encoder_error": warm.encoder_error,
                "load_seconds": warm.load_seconds, "model": atlas.model, "atlas": str(atlas.path), "in_flight": warm.in_flight,
                "batches": stats.__dict__ if stats else None, "usage": warm.fetcher.usage()}

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
    def taxon_values(rank: str, prefix: str = "", limit: int = Query(50, ge=1, le=1000)) -> list[str]:
        """Names present at a rank, most frequent first."""
        return atlas.taxon_values(rank, prefix, limit)

    @router.post("/encode", openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}}})
    async def encode(request: Request, k: int = Query(5, ge=1, le=50)) -> dict:
        """Embedding and predictions at every rank of one image (the body: its bytes)."""
        data = await _read_capped(request, limits.max_upload)
        image = await run_in_threadpool(load_upload, data)
        query_id, enc = await run_in_threadpool(warm.encode, data, image, limits.timeout)
        return encoding_to_json(enc, query_id)

    @router.post("/encode-text")
    def encode_text(body: TextBody) -> dict:
        """A name or description as a query vector."""
        vector = warm.encoder(limits.timeout).encode_text(body.text)
        return {"model_id": atlas.model, "embedding": vector_to_json(vector)}

    @router.post("/predict")
    def predict(body: PredictBody) -> dict:
        """Predictions at every rank for an embedding, over the Tree of Life or only ``within``."""
        within = Within.from_json(body.within) if body.within else None
        preds = warm.encoder(limits.timeout).predict(np.asarray(body.embedding, dtype=np.float32), within, body.k)
        return predictions_to_json(preds)

    @router.post("/search")
    def search(body: SearchBody) -> dict:
        """Nearest records to vectors (or to a query encoded earlier), with their metadata."""
        vectors, model = body.vectors, body.model
        if (vectors is None) == (body.query_id is None):
            raise ValueError("give exactly one of vectors or query_id")
        if body.query_id is not None:
            enc = warm.encoding(body.query_id)
            if enc is None:
                raise LookupError(f"query {body.query_id} is not known here (the server forgets old queries); encode it again")
            vectors, model = enc.embedding, enc.model_id
        nprobe = body.nprobe if body.nprobe is not None else min(16, atlas.nlist)
        hits = atlas.search(vectors, top_n=body.top_n, nprobe=nprobe, scope=body.scope, taxon=body.taxon or None, model=model,
                            fold=body.fold, exact=body.exact)
        return hits_to_json(hits)

    @router.get("/records/{record_id}/image")
    def record_image(record_id: int, variant: str = Query("thumb", pattern="^(thumb|full)$")) -> Response:
        """A record's image through the machine's one fetcher (its policy, budget and cache)."""
        rows = atlas.lookup([record_id])
        if not len(rows) or pd.isna(rows["id"].iloc[0]):
            raise LookupError(f"record {record_id} is not in this atlas")
        return _image_response(warm.fetcher.fetch(rows["url"].iloc[0], variant=variant, key=record_id))

    @router.get("/records/{record_id}/vector")
    def record_vector(record_id: int) -> dict:
        """A record's raw vector when the atlas keeps them, else null."""
        vec = atlas.stored_vector(record_id)
        return {"vector": vector_to_json(vec) if vec is not None else None}

    @router.post("/fetch-url")
    def fetch_url(body: UrlBody) -> Response:
        """An image URL a person typed: public addresses only (see ``images.guard``)."""
        return _image_response(warm.fetcher.fetch_user_url(body.url, variant=body.variant))

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
        from ..figures import search_figures
        figs = search_figures(atlas, body.vector, body.nprobe, body.top_n, body.scope, body.taxon,
                              _hits(body.hit_ids, body.hit_similarity))
        return {"cells_png": base64.b64encode(figs.cells_png).decode(), "recall_png": base64.b64encode(figs.recall_png).decode(),
                "note": figs.note}

    @router.post("/map")
    def atlas_map(body: FiguresBody) -> Response:
        """The atlas map with the query's cells and hits (PNG)."""
        from ..figures import map_figure
        png = map_figure(atlas, body.vector or None, body.nprobe, _hits(body.hit_ids, body.hit_similarity))
        return Response(png, media_type="image/png")


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
    (UploadError, 422, "bad_image"), (AtlasError, 422, "invalid"), (EncoderUnavailableError, 503, "encoder_unavailable"),
    (TimeoutError, 504, "timeout"), (LookupError, 404, "not_found"), (ValueError, 422, "invalid"),
]


def _errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        kind = {401: "unauthorised", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http")
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
