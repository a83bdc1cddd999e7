"""Jobs: submit, list, read (ETag), delete, cancel, retry, events, training metrics, log."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from nas_service.api.cache import Rendered
from nas_service.api.deps import CallerDep, CtxDep
from nas_service.api.paging import (
    ETAG_HEADER,
    LINK_HEADER,
    CursorQuery,
    body_etag,
    link_next,
    list_responses,
    next_url,
    not_modified,
)
from nas_service.api.problems import responses
from nas_service.api.schemas import EventOut, EventPage, JobOut, JobPage, MetricOut, MetricPage
from nas_service.db import Job
from nas_service.db.types import utcnow
from nas_service.domain import TERMINAL, JobSpec, JobStatus, ValidationFailed
from nas_service.services import job_files
from nas_service.services import jobs as svc

router = APIRouter(tags=["jobs"])
ERRORS = responses(401, 404, 422)
LIST_ERRORS = list_responses(401, 404, 422)
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "unchanged since the ETag sent in If-None-Match"}
}
# A running job's cancel is honoured within about a second (README): ask again after this.
DELETE_RETRY_AFTER_S = 2
LOG_CHUNK_DEFAULT = 256 * 1024
LOG_CHUNK_MAX = 4 * 1024 * 1024


def job_out(job: Job) -> JobOut:
    out = JobOut.model_validate(job)
    if job.started_at is not None:
        end = job.finished_at or utcnow()
        out.elapsed_s = round((end - job.started_at).total_seconds(), 3)
    return out


def _limit(ctx: CtxDep, limit: int) -> int:
    if limit > ctx.settings.page_size_max:
        raise ValidationFailed.one(
            "limit", f"{limit} exceeds the maximum page size {ctx.settings.page_size_max}"
        )
    return limit


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobOut,
    responses=responses(400, 401, 422, 429),
    summary="Submit a search job",
)
def submit_job(spec: JobSpec, caller: CallerDep, ctx: CtxDep, response: Response) -> JobOut:
    with ctx.db.transaction() as s:
        job = svc.submit_job(s, ctx.settings, caller.owner_id, spec)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return job_out(job)


@router.get(
    "/jobs",
    response_model=JobPage,
    responses=list_responses(401, 422),
    summary="List this key's jobs, newest first",
)
def list_jobs(
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    response: Response,
    status: Annotated[list[JobStatus] | None, Query(description="repeat to filter several")] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> JobPage:
    with ctx.db.transaction() as s:
        page = svc.list_jobs(s, caller.owner_id, list(status or []), cursor, _limit(ctx, limit))
        out = JobPage(items=[job_out(j) for j in page.items], next_cursor=page.next_cursor)
    link_next(request, response, page.next_cursor)
    return out


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={200: {"headers": ETAG_HEADER}, **NOT_MODIFIED, **ERRORS},
    summary="Read a job; ETag-aware (If-None-Match answers 304 while it is unchanged)",
)
async def get_job(
    job_id: uuid.UUID,
    caller: CallerDep,
    ctx: CtxDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    # Polled every second by every open dashboard: served from the per-process poll cache.
    hit = await ctx.cache.through(
        ctx.cache.jobs, (caller.owner_id, job_id), lambda: _render_job(ctx, caller.owner_id, job_id)
    )
    assert hit.etag is not None
    headers = {"Cache-Control": "no-cache", "ETag": hit.etag}
    if not_modified(if_none_match, hit.etag):
        return Response(status_code=304, headers=headers)
    return Response(hit.body, media_type="application/json", headers=headers)


def _render_job(ctx: CtxDep, owner_id: int, job_id: uuid.UUID) -> Rendered:
    with ctx.db.transaction() as s:
        body = job_out(svc.get_owned_job(s, owner_id, job_id)).model_dump_json().encode()
    return Rendered(body, body_etag(body))


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "deleted: the job, its rows and its files"},
        **responses(
            401,
            404,
            422,
            c409=(
                "job_running: the job is running; its cancel is now requested, DELETE again "
                "after Retry-After seconds. in_use: other jobs reuse its supernet, or a worker "
                "is making one of its exports (errors[] says which)"
            ),
        ),
    },
    summary="Delete a job: cancels it, then removes its rows and its files",
)
def delete_job(job_id: uuid.UUID, caller: CallerDep, ctx: CtxDep) -> Response:
    with ctx.db.transaction() as s:
        done = svc.delete_job(s, ctx.settings, caller.owner_id, job_id)
    ctx.cache.drop_job(caller.owner_id, job_id)
    if not done.deleted:
        raise svc.JobStillRunning(
            f"job {job_id} is running: its cancel is requested and the runner stops within "
            f"seconds; DELETE again once its status is cancelled (retry after "
            f"{DELETE_RETRY_AFTER_S} s)",
            DELETE_RETRY_AFTER_S,
        )
    # After the commit: rows never outlive their files; a crash here leaves files, not rows.
    job_files.remove_files(ctx.settings, job_id, done.files)
    return Response(status_code=204)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses=responses(401, 404, 422, c409="the job already finished"),
    summary="Cancel a job (queued: at once; running: within seconds)",
)
def cancel_job(job_id: uuid.UUID, caller: CallerDep, ctx: CtxDep) -> JobOut:
    with ctx.db.transaction() as s:
        out = job_out(svc.cancel_job(s, caller.owner_id, job_id))
    ctx.cache.drop_job(caller.owner_id, job_id)
    return out


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobOut,
    responses=responses(401, 404, 422, c409="the job is not failed or cancelled"),
    summary="Queue a failed or cancelled job again (it resumes from its checkpoints)",
)
def retry_job(job_id: uuid.UUID, caller: CallerDep, ctx: CtxDep) -> JobOut:
    with ctx.db.transaction() as s:
        out = job_out(svc.retry_job(s, caller.owner_id, job_id))
    ctx.cache.drop_job(caller.owner_id, job_id)
    return out


@router.get(
    "/jobs/{job_id}/events",
    response_model=EventPage,
    responses=LIST_ERRORS,
    summary="Job events, oldest first",
)
def list_events(
    job_id: uuid.UUID,
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    response: Response,
    after: Annotated[
        int,
        Query(
            ge=0,
            le=2**63 - 1,
            description="only events with a larger id: to follow a job, the last id seen",
        ),
    ] = 0,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1)] = 200,
) -> EventPage:
    with ctx.db.transaction() as s:
        page = svc.list_events(s, caller.owner_id, job_id, after, cursor, _limit(ctx, limit))
        items = [EventOut.model_validate(e) for e in page.items]
    link_next(request, response, page.next_cursor)
    return EventPage(items=items, next_cursor=page.next_cursor)


@router.get(
    "/jobs/{job_id}/metrics",
    response_model=MetricPage,
    responses=LIST_ERRORS,
    summary="Training curves, in seq order",
)
def list_metrics(
    job_id: uuid.UUID,
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    response: Response,
    after: Annotated[
        int,
        Query(
            ge=-1,
            le=2**31 - 1,
            description="only rows with a larger seq: to follow training, the last seq seen",
        ),
    ] = -1,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1)] = 500,
) -> MetricPage:
    with ctx.db.transaction() as s:
        page = svc.list_metrics(s, caller.owner_id, job_id, after, cursor, _limit(ctx, limit))
        items = [MetricOut.model_validate(m) for m in page.items]
    link_next(request, response, page.next_cursor)
    return MetricPage(items=items, next_cursor=page.next_cursor)


LOG_HEADERS = {
    "X-Log-Offset": {
        "description": "the byte offset after this chunk: pass it as ?offset= to read on",
        "schema": {"type": "integer"},
    },
    "X-Log-Size": {
        "description": "the log's size in bytes when it was read",
        "schema": {"type": "integer"},
    },
    **LINK_HEADER,
}


@router.get(
    "/jobs/{job_id}/logs",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "whole log lines from ?offset=, UTF-8 text (empty: nothing new yet)",
            "headers": LOG_HEADERS,
        },
        **ERRORS,
    },
    summary="The job's log (its runner's log lines, every attempt); follow it with ?offset=",
)
def get_logs(
    job_id: uuid.UUID,
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    offset: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="byte offset: X-Log-Offset of the last read")
    ] = 0,
    limit: Annotated[
        int, Query(ge=1, le=LOG_CHUNK_MAX, description="at most this many bytes")
    ] = LOG_CHUNK_DEFAULT,
) -> Response:
    with ctx.db.transaction() as s:
        job = svc.get_owned_job(s, caller.owner_id, job_id)
        finished = JobStatus(job.status) in TERMINAL
    chunk = job_files.read_log(
        job_files.log_path(ctx.settings, job_id), offset, limit, finished=finished
    )
    headers = {
        "X-Log-Offset": str(chunk.next_offset),
        "X-Log-Size": str(chunk.size),
        "Cache-Control": "no-cache",
    }
    if chunk.more:
        headers["Link"] = f'<{next_url(request, "offset", chunk.next_offset)}>; rel="next"'
    return Response(chunk.data, media_type="text/plain; charset=utf-8", headers=headers)
