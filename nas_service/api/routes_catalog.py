"""Datasets (upload and list), search spaces, devices, health and readiness."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from nas_service.api.deps import CallerDep, CtxDep
from nas_service.api.multipart import read_multipart
from nas_service.api.paging import CursorQuery, link_next, list_responses
from nas_service.api.problems import problem, responses
from nas_service.api.routes_jobs import ERRORS, _limit
from nas_service.api.schemas import (
    CatalogOut,
    DatasetList,
    DatasetOut,
    DatasetRegister,
    DeviceList,
    DeviceOut,
    Health,
    SpaceList,
    SpaceOut,
)
from nas_service.catalog import CATALOG, datasets
from nas_service.db import devices as device_repo
from nas_service.db import migrate
from nas_service.domain import STAGES, TERMINAL, JobStatus, ValidationFailed
from nas_service.services import datasets as ds_svc
from nas_service.services.pagination import as_str, decode_cursor, encode_cursor, page_of
from nas_service.services.spaces import list_space_summaries

router = APIRouter()
public = APIRouter(tags=["health"])


@router.post(
    "/datasets",
    status_code=201,
    response_model=DatasetOut,
    tags=["datasets"],
    responses=responses(
        400,
        401,
        422,
        c409="a dataset of this name exists for this key",
        c413="the upload exceeds max_upload_bytes",
    ),
    summary=(
        "Upload a dataset: multipart file (.npz, .zip of class folders, CIFAR .tar.gz), name?, "
        "format?; converted into the on-disk store before the answer"
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "name": {"type": "string"},
                            "format": {"type": "string", "enum": datasets.upload_formats()},
                        },
                    }
                }
            },
        }
    },
)
async def upload_dataset(
    request: Request, caller: CallerDep, ctx: CtxDep, response: Response
) -> DatasetOut:
    upload = await read_multipart(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        ds_svc.upload_dir(ctx.settings),
        ctx.settings.max_upload_bytes,
    )
    try:
        if "file" not in upload.files:
            raise ValidationFailed.one("file", "the form has no 'file' part")
        filename, tmp = upload.files["file"]
        name = upload.fields.get("name") or _stem(filename)
        fmt = ds_svc.format_of(filename, upload.fields.get("format") or None)

        # Validation reads the whole file: keep it off the event loop.
        def store() -> DatasetOut:
            with ctx.db.transaction() as s:
                row = ds_svc.store_dataset(s, ctx.settings, caller.owner_id, name, fmt, tmp)
                return DatasetOut.model_validate(row)

        out = await run_in_threadpool(store)
    finally:
        upload.cleanup()
    response.headers["Location"] = f"/api/v1/datasets/{out.id}"
    return out


@router.post(
    "/datasets/register",
    status_code=201,
    response_model=DatasetOut,
    tags=["datasets"],
    responses=responses(
        400,
        401,
        422,
        c409="a dataset of this name exists for this key",
    ),
    summary="Register a dataset already on the server by path (under the server's dataset_roots)",
)
async def register_dataset(
    body: DatasetRegister, caller: CallerDep, ctx: CtxDep, response: Response
) -> DatasetOut:
    name = body.name or _stem(body.path)

    # Conversion reads the whole source: keep it off the event loop.
    def store() -> DatasetOut:
        with ctx.db.transaction() as s:
            row = ds_svc.register_path(
                s, ctx.settings, caller.owner_id, name, body.format, body.path
            )
            return DatasetOut.model_validate(row)

    out = await run_in_threadpool(store)
    response.headers["Location"] = f"/api/v1/datasets/{out.id}"
    return out


def _stem(path: str) -> str:
    name = Path(path.rstrip("/")).name
    for suffix in (".tar.gz", ".tgz", ".tar", ".npz", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


@router.get(
    "/datasets",
    response_model=DatasetList,
    tags=["datasets"],
    responses=list_responses(401, 422),
    summary="List this key's datasets, newest first",
)
def list_datasets(
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    response: Response,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> DatasetList:
    with ctx.db.transaction() as s:
        page = ds_svc.list_datasets(s, caller.owner_id, cursor, _limit(ctx, limit))
        out = DatasetList(
            items=[DatasetOut.model_validate(d) for d in page.items], next_cursor=page.next_cursor
        )
    link_next(request, response, page.next_cursor)
    return out


@router.delete(
    "/datasets/{dataset_id}",
    status_code=204,
    response_class=Response,
    tags=["datasets"],
    responses={
        204: {"description": "deleted: the row and the stored file"},
        **responses(401, 404, 422, c409="in_use: jobs use the dataset (errors[] names them)"),
    },
    summary="Delete an uploaded dataset (refused while a job of this key uses it)",
)
def delete_dataset(dataset_id: uuid.UUID, caller: CallerDep, ctx: CtxDep) -> Response:
    with ctx.db.transaction() as s:
        stored = ds_svc.delete_dataset(s, caller.owner_id, dataset_id)
    ds_svc.remove_stored_file(ctx.settings, stored)  # after the commit: no row without its file
    return Response(status_code=204)


@router.get(
    "/datasets/{dataset_id}", response_model=DatasetOut, tags=["datasets"], responses=ERRORS
)
def get_dataset(dataset_id: uuid.UUID, caller: CallerDep, ctx: CtxDep) -> DatasetOut:
    with ctx.db.transaction() as s:
        return DatasetOut.model_validate(ds_svc.get_owned_dataset(s, caller.owner_id, dataset_id))


@router.get(
    "/catalog",
    response_model=CatalogOut,
    tags=["catalog"],
    responses=responses(401),
    summary="Every name a job spec may use, by kind, with each entry's options schema",
)
def get_catalog(caller: CallerDep) -> CatalogOut:
    job = {
        "statuses": [s.value for s in JobStatus],
        "terminal": sorted(s.value for s in TERMINAL),
        "stages": list(STAGES),
    }
    return CatalogOut.model_validate({"job": job, "kinds": CATALOG.to_json()})


@router.get(
    "/search-spaces",
    response_model=SpaceList,
    tags=["catalog"],
    responses=list_responses(401, 422),
    summary="Search spaces, by id",
)
def list_search_spaces(
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    response: Response,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> SpaceList:
    rows = sorted(list_space_summaries(), key=lambda x: str(x["id"]))
    if cursor:
        (last,) = decode_cursor(cursor, "search-spaces", as_str)
        rows = [x for x in rows if str(x["id"]) > last]
    page = page_of(rows, _limit(ctx, limit), lambda x: encode_cursor("search-spaces", x["id"]))
    link_next(request, response, page.next_cursor)
    return SpaceList(items=[SpaceOut(**x) for x in page.items], next_cursor=page.next_cursor)


@router.get(
    "/devices",
    response_model=DeviceList,
    tags=["catalog"],
    responses=list_responses(401, 422),
    summary="Latency targets, by name",
)
def list_devices(
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    response: Response,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> DeviceList:
    after = decode_cursor(cursor, "devices", as_str)[0] if cursor else None
    with ctx.db.transaction() as s:
        rows = device_repo.list_devices(s, after=after, limit=_limit(ctx, limit) + 1)
        page = page_of(rows, limit, lambda d: encode_cursor("devices", d.name))
        out = DeviceList(
            items=[DeviceOut.model_validate(d) for d in page.items], next_cursor=page.next_cursor
        )
    link_next(request, response, page.next_cursor)
    return out


@public.get("/healthz", response_model=Health, summary="Liveness (no auth)")
def healthz() -> Health:
    return Health(status="ok")


@public.get(
    "/readyz",
    response_model=Health,
    responses=responses(c503="database unreachable or not migrated"),
    summary="Readiness: database reachable and migrated to head (no auth)",
)
def readyz(request: Request, ctx: CtxDep) -> Response:
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = migrate.current_revision(ctx.db.engine)
    except Exception as exc:
        return problem(
            request, 503, "not_ready", "Not ready", f"database unreachable: {type(exc).__name__}"
        )
    head = migrate.head_revision()
    if current != head:
        return problem(
            request,
            503,
            "not_ready",
            "Not ready",
            f"database at migration {current}, code expects {head}: run "
            "'python -m nas_service.admin migrate' (or 'alembic upgrade head')",
        )
    body = Health(status="ready", database=ctx.db.dialect, revision=current, head=head)
    return JSONResponse(body.model_dump())
