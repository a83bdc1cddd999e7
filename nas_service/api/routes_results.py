"""Candidates, the Pareto front, and subnet downloads."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from nas_service.api.cache import Rendered
from nas_service.api.deps import CallerDep, CtxDep
from nas_service.api.paging import CursorQuery, link_next, not_modified
from nas_service.api.problems import responses
from nas_service.api.routes_jobs import ERRORS, LIST_ERRORS, _limit
from nas_service.api.schemas import CandidateOut, CandidatePage, ExportPending, ParetoOut
from nas_service.catalog import exports
from nas_service.db.queries import SORTABLE, CandidateFilter, pareto_front
from nas_service.domain import JobStatus, NotFound
from nas_service.services import jobs as svc
from nas_service.services.exports import subnet_download

router = APIRouter(tags=["results"])
MAX_BIGINT = 2**63 - 1  # ids are BIGINT: larger numbers are a 422, not a database error
SortKey = Literal[SORTABLE]  # type: ignore[valid-type]


@router.get(
    "/jobs/{job_id}/candidates",
    response_model=CandidatePage,
    responses=LIST_ERRORS,
    summary="Candidates of a job: filter, sort by any objective column (NULLs last), paginate",
)
def get_candidates(
    job_id: uuid.UUID,
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    response: Response,
    source: Literal["predicted", "measured"] | None = None,
    feasible: bool | None = None,
    pareto: bool | None = None,
    device: str | None = None,
    sort: SortKey = "id",
    order: Literal["asc", "desc"] = "asc",
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> CandidatePage:
    flt = CandidateFilter(source=source, feasible=feasible, pareto=pareto, device=device)
    with ctx.db.transaction() as s:
        page = svc.list_job_candidates(
            s,
            caller.owner_id,
            job_id,
            flt,
            sort=sort,
            order=order,
            cursor=cursor,
            limit=_limit(ctx, limit),
        )
        items = [CandidateOut.model_validate(c) for c in page.items]
    link_next(request, response, page.next_cursor)
    return CandidatePage(items=items, next_cursor=page.next_cursor)


def _etag(job_id: uuid.UUID, version: int, status: str) -> str:
    return f'"{job_id.hex[:12]}-{version}-{status}"'


@router.get(
    "/jobs/{job_id}/pareto",
    response_model=ParetoOut,
    responses={**ERRORS, 304: {"description": "unchanged since the ETag sent in If-None-Match"}},
    summary="The Pareto front (current while running, measured at the end); ETag-aware",
)
async def get_pareto(
    job_id: uuid.UUID,
    caller: CallerDep,
    ctx: CtxDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    # Many dashboards poll this every second: the rendered front is reused from the per-process
    # poll cache (at most poll_cache_s stale), and an unchanged front answers 304 from memory.
    hit = await ctx.cache.through(
        ctx.cache.pareto,
        (caller.owner_id, job_id),
        lambda: _render_pareto(ctx, caller.owner_id, job_id),
    )
    assert hit.etag is not None
    headers = {"Cache-Control": "no-cache", "ETag": hit.etag}
    if not_modified(if_none_match, hit.etag):
        return Response(status_code=304, headers=headers)
    return Response(hit.body, media_type="application/json", headers=headers)


def _render_pareto(ctx: CtxDep, owner_id: int, job_id: uuid.UUID) -> Rendered:
    with ctx.db.transaction() as s:
        found = pareto_front(s, job_id, owner_id)
        if found is None:
            raise NotFound(f"no job {job_id}")
        job, front = found
        out = ParetoOut(
            job_id=job.id,
            status=job.status,
            version=job.pareto_version,
            final=job.status == JobStatus.succeeded.value,
            front=[CandidateOut.model_validate(c) for c in front],
            hypervolume_history=list(job.pareto_history or []),
            outcome=job.outcome,
        )
        return Rendered(
            out.model_dump_json().encode(), _etag(job.id, job.pareto_version, job.status)
        )


@router.get(
    "/candidates/{candidate_id}/subnet",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the exported file"},
        202: {"model": ExportPending, "description": "export requested or in progress"},
        304: {"description": "unchanged since the ETag sent in If-None-Match"},
        **responses(
            401, 404, 422, c409="the job failed or was cancelled", c500="the export failed"
        ),
    },
    summary="Download an exported subnet (weights, TorchScript or ONNX)",
    response_model=None,
)
def download_subnet(
    candidate_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)],
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    format: Annotated[
        str,
        Query(
            description="an export format of the catalog",
            json_schema_extra={"enum": exports.names()},
        ),
    ] = "weights",
    retry: Annotated[bool, Query(description="queue a failed export again")] = False,
) -> Response:
    with ctx.db.transaction() as s:
        dl = subnet_download(s, caller.owner_id, candidate_id, format, retry=retry)
    if dl.path is None:
        wait = ctx.settings.export_retry_after_s
        body = ExportPending(
            artifact_id=dl.artifact.id, status=dl.artifact.status, retry_after_s=wait
        )
        return JSONResponse(body.model_dump(), status_code=202, headers={"Retry-After": str(wait)})
    etag = f'"{dl.artifact.sha256}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return FileResponse(
        dl.path,
        media_type="application/octet-stream",
        filename=dl.filename,
        headers={"ETag": etag, "X-Checksum-SHA256": dl.artifact.sha256 or ""},
    )
