"""Read queries behind the API's candidate listings and the Pareto front."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from nas_service.db.models import Candidate, Job

SORTABLE = (
    "id",
    "accuracy",
    "test_accuracy",
    "latency_ms",
    "flops",
    "params",
    "predicted_accuracy",
    "predicted_latency_ms",
    "created_at",
)


@dataclass
class CandidateFilter:
    source: str | None = None
    feasible: bool | None = None
    pareto: bool | None = None
    device: str | None = None


def list_candidates(
    s: Session,
    job_id: uuid.UUID,
    flt: CandidateFilter,
    *,
    sort: str = "id",
    order: Literal["asc", "desc"] = "asc",
    after: tuple[Any, int] | None = None,
    limit: int = 100,
) -> list[Candidate]:
    """Sorted by ``sort`` (NULLs last in either order), ties by id; ``after`` is the (sort
    value, id) of the last row of the previous page (keyset: no row repeats or is skipped)."""
    if sort not in SORTABLE:
        raise ValueError(f"cannot sort by {sort!r}; sortable: {list(SORTABLE)}")
    q = select(Candidate).where(Candidate.job_id == job_id)
    if flt.source is not None:
        q = q.where(Candidate.source == flt.source)
    if flt.feasible is not None:
        q = q.where(Candidate.feasible.is_(flt.feasible))
    if flt.pareto is not None:
        q = q.where(Candidate.is_pareto.is_(flt.pareto))
    if flt.device is not None:
        q = q.where(Candidate.device == flt.device)
    col = getattr(Candidate, sort)
    if after is not None:
        value, last_id = after
        if value is None:  # inside the trailing NULLs
            q = q.where(col.is_(None), Candidate.id > last_id)
        else:
            beyond = col > value if order == "asc" else col < value
            q = q.where(or_(beyond, and_(col == value, Candidate.id > last_id), col.is_(None)))
    key = col.asc() if order == "asc" else col.desc()
    # NULLs (not yet measured) last either way; id breaks ties so pages are stable.
    q = q.order_by(key.nulls_last(), Candidate.id.asc()).limit(limit)
    return list(s.scalars(q))


def get_candidate(s: Session, candidate_id: int, owner_id: int | None = None) -> Candidate | None:
    q = select(Candidate).where(Candidate.id == candidate_id)
    if owner_id is not None:
        q = q.join(Job, Job.id == Candidate.job_id).where(Job.owner_id == owner_id)
    return s.scalars(q).one_or_none()


def pareto_front(
    s: Session, job_id: uuid.UUID, owner_id: int
) -> tuple[Job, list[Candidate]] | None:
    """The job and its current front in ONE indexed query (jobs pk LEFT JOIN candidates on
    (job_id, is_pareto)); None when the job is not this owner's."""
    q = (
        select(Job, Candidate)
        .outerjoin(Candidate, and_(Candidate.job_id == Job.id, Candidate.is_pareto.is_(True)))
        .where(Job.id == job_id, Job.owner_id == owner_id)
        .order_by(Candidate.id)
    )
    rows = s.execute(q).all()
    if not rows:
        return None
    job = rows[0][0]
    return job, [c for _, c in rows if c is not None]
