"""Submitting and managing jobs: the full validation of a ``JobSpec`` lives here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.orm import Session

from nas_service.catalog import CATALOG, datasets, objectives, searchers
from nas_service.db import Candidate, Job, JobEvent, TrainMetric, results
from nas_service.db import artifacts as arts
from nas_service.db import datasets as dataset_repo
from nas_service.db import devices as device_repo
from nas_service.db import jobs as repo
from nas_service.db.queries import CandidateFilter, list_candidates
from nas_service.domain import (
    ArtifactStatus,
    Conflict,
    FieldError,
    JobSpec,
    JobStatus,
    NotFound,
    TooManyJobs,
    ValidationFailed,
)
from nas_service.domain.dataset_options import dataset_option_errors
from nas_service.domain.errors import option_errors
from nas_service.services import job_files
from nas_service.services.capacity import resource_errors
from nas_service.services.pagination import (
    Page,
    as_datetime,
    as_float,
    as_int,
    as_str,
    as_uuid,
    decode_cursor,
    encode_cursor,
    nullable,
    page_of,
)
from nas_service.services.spaces import build_space
from nas_service.settings import Settings
from search_spaces import DataShape


def validate_spec(s: Session, settings: Settings, owner_id: int, spec: JobSpec) -> Any:
    """Check everything a spec refers to; returns the space the runner will build (fitted to
    the dataset by the shared rule, ``search_spaces.fitting``). Collects every field error it
    can so the user fixes them in one round."""
    errors: list[FieldError] = []
    shape, shape_errors = _dataset_shape(s, owner_id, spec)
    errors.extend(shape_errors)
    space = None
    try:
        space = build_space(spec.space.id, dict(spec.space.options), data=shape)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    errors.extend(_limit_errors(settings, spec))
    if spec.training.augment is not None and shape is not None and shape.modality != "image":
        errors.append(
            FieldError(
                "training.augment",
                f"augmentation crops and flips images; the dataset holds {shape.modality} "
                f"samples of shape {list(shape.input_shape)}",
            )
        )
    errors.extend(resource_errors(settings, spec))
    errors.extend(_search_option_errors(spec))
    for i, name in enumerate(spec.devices):
        if device_repo.get_device(s, name) is None:
            known = [d.name for d in device_repo.list_devices(s)]
            errors.append(FieldError(f"devices[{i}]", f"unknown device '{name}'; known: {known}"))
    if space is not None:
        errors.extend(_impossible_bounds(spec, space))
    if spec.supernet_from is not None:
        errors.extend(_check_supernet_from(s, owner_id, spec, space))
    if errors:
        raise ValidationFailed(errors)
    return space


def _dataset_shape(
    s: Session, owner_id: int, spec: JobSpec
) -> tuple[DataShape | None, list[FieldError]]:
    """The shape the space is fitted to (None when only loading the data would tell), and the
    problems with the dataset reference and its options."""
    options = dict(spec.dataset.options)
    if spec.dataset.name is not None:
        kind, info = spec.dataset.name, {}
    else:
        # A shared lock: the dataset cannot be deleted before this job is stored.
        ds = (
            dataset_repo.get_dataset_for_share(s, spec.dataset.id, owner_id)
            if spec.dataset.id
            else None
        )
        if ds is None:
            return None, [FieldError("dataset.id", f"no dataset {spec.dataset.id} for this key")]
        kind, info = ds.format, dict(ds.info or {})
    errors = dataset_option_errors(kind, options)
    if errors:
        return None, errors
    return datasets.data_shape(kind, options, info), []


def _limit_errors(settings: Settings, spec: JobSpec) -> list[FieldError]:
    errors = []
    if spec.search.budget > settings.max_budget:
        errors.append(
            FieldError(
                "search.budget", f"{spec.search.budget} exceeds the limit {settings.max_budget}"
            )
        )
    pop = spec.search.population
    if pop is not None and pop > settings.max_population:
        errors.append(
            FieldError("search.population", f"{pop} exceeds the limit {settings.max_population}")
        )
    if spec.training.epochs_scale > settings.max_epochs_scale:
        errors.append(
            FieldError(
                "training.epochs_scale",
                f"{spec.training.epochs_scale} exceeds the limit {settings.max_epochs_scale}",
            )
        )
    return errors


def _search_option_errors(spec: JobSpec) -> list[FieldError]:
    """``search.options`` against the algorithm's options model (the one the workers use)."""
    entry = CATALOG.get(searchers.KIND, spec.search.algorithm)
    return option_errors(
        entry.options, spec.search.options, field="search.options", owner=entry.name
    )


def _impossible_bounds(spec: JobSpec, space: Any) -> list[FieldError]:
    """A ceiling on an analytic cost (MACs, parameters, ...) below the fitted space's smallest
    network can never be met."""
    out = []
    smallest = space.min_arch()
    analytic = objectives.analytic()
    for i, obj in enumerate(spec.search.objectives):
        fn = analytic.get(obj.name) if obj.direction == "min" else None
        floor = fn(space, smallest) if fn is not None else None
        if obj.bound is not None and floor is not None and obj.bound < floor:
            out.append(
                FieldError(
                    f"search.objectives[{i}].bound",
                    f"{obj.name} <= {obj.bound:g} is impossible: the smallest network of "
                    f"space '{spec.space.id}' on this dataset has {round(floor):,}",
                )
            )
    return out


def _check_supernet_from(s: Session, owner_id: int, spec: JobSpec, space: Any) -> list[FieldError]:
    assert spec.supernet_from is not None
    src = repo.get_job(s, spec.supernet_from, owner_id)
    field = "supernet_from"
    if src is None:
        return [FieldError(field, f"no job {spec.supernet_from} for this key")]
    if src.status != JobStatus.succeeded.value:
        return [
            FieldError(
                field,
                f"job {src.id} is {src.status}; only a succeeded job's supernet can be reused",
            )
        ]
    if space is None:
        return []
    try:
        src_job = JobSpec.model_validate(src.spec)
        shape, _ = _dataset_shape(s, owner_id, src_job)
        src_spec = build_space(src_job.space.id, dict(src_job.space.options), data=shape).spec()
    except (ValidationFailed, ValidationError):
        src_spec = None
    if src_spec != space.spec():
        return [
            FieldError(
                field,
                f"job {src.id} trained space {src_spec} but this job asks for {space.spec()}; "
                "the space must be the same",
            )
        ]
    return []


def submit_job(s: Session, settings: Settings, owner_id: int, spec: JobSpec) -> Job:
    space = validate_spec(s, settings, owner_id, spec)
    active = repo.count_active_jobs(s, owner_id)
    if active >= settings.max_jobs_per_key_running:
        raise TooManyJobs(
            f"this key has {active} queued or running jobs; the limit is "
            f"{settings.max_jobs_per_key_running}: wait for one to finish or cancel one"
        )
    return repo.create_job(
        s,
        owner_id,
        spec.model_dump(mode="json"),
        space_id=space.id,
        name=spec.name,
        supernet_from=spec.supernet_from,
    )


def get_owned_job(s: Session, owner_id: int, job_id: uuid.UUID) -> Job:
    job = repo.get_job(s, job_id, owner_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def list_jobs(
    s: Session, owner_id: int, statuses: list[str], cursor: str | None, limit: int
) -> Page[Job]:
    """Newest first."""
    before = None
    if cursor:
        ts, jid = decode_cursor(cursor, "jobs", as_datetime, as_uuid)
        before = (ts, jid)
    rows = repo.list_jobs(s, owner_id, statuses=statuses, before=before, limit=limit + 1)
    return page_of(rows, limit, lambda j: encode_cursor("jobs", j.created_at, j.id))


def list_events(
    s: Session, owner_id: int, job_id: uuid.UUID, after: int, cursor: str | None, limit: int
) -> Page[JobEvent]:
    """Oldest first, after event id ``after`` (to follow a job: the last id seen)."""
    get_owned_job(s, owner_id, job_id)
    if cursor:
        (last,) = decode_cursor(cursor, "events", as_int)
        after = max(after, last)
    rows = repo.list_events(s, job_id, after=after, limit=limit + 1)
    return page_of(rows, limit, lambda e: encode_cursor("events", e.id))


def list_metrics(
    s: Session, owner_id: int, job_id: uuid.UUID, after: int, cursor: str | None, limit: int
) -> Page[TrainMetric]:
    """In seq order, after seq ``after`` (to follow training: the last seq seen)."""
    get_owned_job(s, owner_id, job_id)
    if cursor:
        (last,) = decode_cursor(cursor, "metrics", as_int)
        after = max(after, last)
    rows = results.list_train_metrics(s, job_id, after=after, limit=limit + 1)
    return page_of(rows, limit, lambda m: encode_cursor("metrics", m.seq))


# The type of each sortable candidate column, to check a cursor's value before it is queried.
_SORT_VALUE = {
    "id": as_int,
    "accuracy": as_float,
    "test_accuracy": as_float,
    "latency_ms": as_float,
    "flops": as_int,
    "params": as_int,
    "predicted_accuracy": as_float,
    "predicted_latency_ms": as_float,
    "created_at": as_datetime,
}


def list_job_candidates(
    s: Session,
    owner_id: int,
    job_id: uuid.UUID,
    flt: CandidateFilter,
    *,
    sort: str,
    order: Literal["asc", "desc"],
    cursor: str | None,
    limit: int,
) -> Page[Candidate]:
    """Filtered and sorted (NULLs last, ties by id); a cursor holds the sort it was made for."""
    get_owned_job(s, owner_id, job_id)
    after = None
    if cursor:
        c_sort, c_order, value, last_id = decode_cursor(
            cursor, "candidates", as_str, as_str, lambda v: v, as_int
        )
        if (c_sort, c_order) != (sort, order):
            raise ValidationFailed.one(
                "cursor",
                f"this cursor pages candidates sorted by {c_sort} {c_order}, not {sort} "
                f"{order}: keep sort and order while paging",
            )
        try:
            after = (nullable(_SORT_VALUE[sort])(value), last_id)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValidationFailed.one("cursor", "not a cursor returned by this API") from exc
    rows = list_candidates(s, job_id, flt, sort=sort, order=order, after=after, limit=limit + 1)

    def cursor_of(c: Candidate) -> str:
        return encode_cursor("candidates", sort, order, getattr(c, sort), c.id)

    return page_of(rows, limit, cursor_of)


def cancel_job(s: Session, owner_id: int, job_id: uuid.UUID) -> Job:
    job = get_owned_job(s, owner_id, job_id)
    if job.status in (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value):
        raise Conflict(
            f"job {job_id} is already {job.status}; only queued or running jobs can be cancelled"
        )
    out = repo.request_cancel(s, job_id, owner_id)
    if out is None:  # finished between the read and the update
        raise Conflict(f"job {job_id} finished before it could be cancelled")
    return out


class JobStillRunning(Conflict):
    """DELETE of a running job: its cancel is requested; the delete succeeds once it ends."""

    code = "job_running"
    title = "Job still running"

    def __init__(self, detail: str, retry_after_s: int):
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_s)}


class InUse(Conflict):
    """A resource others depend on (a dataset jobs name, a supernet jobs reuse)."""

    code = "in_use"
    title = "In use"

    def __init__(self, field: str, reason: str, retry_after_s: int | None = None):
        super().__init__(reason)
        self.errors = [FieldError(field, reason)]
        if retry_after_s is not None:
            self.headers = {"Retry-After": str(retry_after_s)}


@dataclass
class JobDeletion:
    """What DELETE did: ``deleted`` with the files to remove once the transaction commits, or
    (a running job) only the cancel request."""

    job: Job
    deleted: bool
    files: list[Path] = field(default_factory=list)


def delete_job(s: Session, settings: Settings, owner_id: int, job_id: uuid.UUID) -> JobDeletion:
    """Delete a job that no worker holds: queued (never claimed while its row is locked here),
    succeeded, failed or cancelled. A running job gets its cancel requested instead and stays;
    the caller answers 409 until the runner (or the dispatcher's grace kill, or the reaper for a
    lost worker) has ended it, so a worker's claim, heartbeats and resume are never pulled from
    under it. Refused while other jobs reuse its supernet or a worker makes one of its exports.
    The rows go in this transaction (events, metrics, candidates, artifacts by cascade); the
    files are the caller's to remove after the commit, so a failure leaves no rows without
    their files, at worst files without rows."""
    job = repo.lock_job(s, job_id, owner_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status == JobStatus.running.value:
        repo.request_cancel(s, job_id, owner_id)
        return JobDeletion(job, deleted=False)
    users = repo.jobs_reusing(s, job_id)
    if users:
        raise InUse(
            "job_id",
            f"jobs {', '.join(str(u) for u in users)} reuse this job's supernet "
            "(supernet_from): delete them first",
        )
    files: list[Path] = []
    fresh = timedelta(seconds=settings.stall_after_s)
    now = repo.db_now(s)
    for art in arts.job_artifacts(s, job_id):
        claimed = art.status == ArtifactStatus.pending.value and art.worker_id is not None
        if claimed and art.updated_at is not None and now - art.updated_at < fresh:
            raise InUse(
                "job_id",
                f"export {art.id} of this job is being made by worker {art.worker_id}; "
                "delete the job once it is done",
                retry_after_s=settings.export_retry_after_s,
            )
        if art.uri:
            files.append(job_files.uri_path(art.uri))
    files.extend(job_files.run_dirs(settings, job))
    repo.delete_job(s, job_id)
    return JobDeletion(job, deleted=True, files=files)


def retry_job(s: Session, owner_id: int, job_id: uuid.UUID) -> Job:
    job = get_owned_job(s, owner_id, job_id)
    out = repo.retry_job(s, job_id)
    if out is None:
        raise Conflict(
            f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried"
        )
    return out
