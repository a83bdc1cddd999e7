"""Submitting and managing jobs: the full validation of a ``JobSpec`` lives here."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from nas_service.catalog import CATALOG, datasets, objectives, searchers
from nas_service.db import Job
from nas_service.db import datasets as dataset_repo
from nas_service.db import devices as device_repo
from nas_service.db import jobs as repo
from nas_service.domain import (
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
from nas_service.services.pagination import decode_cursor, encode_cursor
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
        ds = dataset_repo.get_dataset(s, spec.dataset.id, owner_id) if spec.dataset.id else None
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
) -> tuple[list[Job], str | None]:
    before = decode_cursor(cursor) if cursor else None
    rows = repo.list_jobs(s, owner_id, statuses=statuses, before=before, limit=limit + 1)
    page = rows[:limit]
    nxt = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, nxt


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


def retry_job(s: Session, owner_id: int, job_id: uuid.UUID) -> Job:
    job = get_owned_job(s, owner_id, job_id)
    out = repo.retry_job(s, job_id)
    if out is None:
        raise Conflict(
            f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried"
        )
    return out
