"""Jobs: submit, list, read, cancel, retry, events, training metrics."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from nas_service.api.cache import Rendered
from nas_service.api.deps import CallerDep, CtxDep
from nas_service.api.problems import responses
from nas_service.api.schemas import EventOut, EventPage, JobOut, JobPage, MetricOut, MetricPage
from nas_service.db import Job, results
from nas_service.db import jobs as job_repo
from nas_service.db.types import utcnow
from nas_service.domain import JobSpec, JobStatus, ValidationFailed
from nas_service.services import jobs as svc

router = APIRouter(tags=["jobs"])
ERRORS = responses(401, 404, 422)


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
    "/jobs", response_model=JobPage, responses=responses(401, 422), summary="List this key's jobs"
)
def list_jobs(
    caller: CallerDep,
    ctx: CtxDep,
    status: Annotated[list[JobStatus] | None, Query(description="repeat to filter several")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> JobPage:
    with ctx.db.transaction() as s:
        page, nxt = svc.list_jobs(
            s, caller.owner_id, list(status or []), cursor, _limit(ctx, limit)
        )
        return JobPage(items=[job_out(j) for j in page], next_cursor=nxt)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS, summary="Read a job")
async def get_job(job_id: uuid.UUID, caller: CallerDep, ctx: CtxDep) -> Response:
    # Polled every second by every open dashboard: served from the per-process poll cache.
    hit = await ctx.cache.through(
        ctx.cache.jobs, (caller.owner_id, job_id), lambda: _render_job(ctx, caller.owner_id, job_id)
    )
    return Response(hit.body, media_type="application/json", headers={"Cache-Control": "no-cache"})


def _render_job(ctx: CtxDep, owner_id: int, job_id: uuid.UUID) -> Rendered:
    with ctx.db.transaction() as s:
        return Rendered(job_out(svc.get_owned_job(s, owner_id, job_id)).model_dump_json().encode())


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
    "/jobs/{job_id}/events", response_model=EventPage, responses=ERRORS, summary="Job events"
)
def list_events(
    job_id: uuid.UUID,
    caller: CallerDep,
    ctx: CtxDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="last event id seen")] = 0,
    limit: Annotated[int, Query(ge=1)] = 200,
) -> EventPage:
    with ctx.db.transaction() as s:
        svc.get_owned_job(s, caller.owner_id, job_id)
        rows = job_repo.list_events(s, job_id, after=after, limit=_limit(ctx, limit))
        items = [EventOut.model_validate(e) for e in rows]
    return EventPage(items=items, next_after=items[-1].id if items else None)


@router.get(
    "/jobs/{job_id}/metrics", response_model=MetricPage, responses=ERRORS, summary="Training curves"
)
def list_metrics(
    job_id: uuid.UUID,
    caller: CallerDep,
    ctx: CtxDep,
    after: Annotated[
        int, Query(ge=-1, le=2**31 - 1, description="last seq seen; -1 for the start")
    ] = -1,
    limit: Annotated[int, Query(ge=1)] = 500,
) -> MetricPage:
    with ctx.db.transaction() as s:
        svc.get_owned_job(s, caller.owner_id, job_id)
        rows = results.list_train_metrics(s, job_id, after=after, limit=_limit(ctx, limit))
        items = [MetricOut.model_validate(m) for m in rows]
    return MetricPage(items=items, next_after=items[-1].seq if items else None)
