"""Job repository: creation, guarded state transitions, claims, heartbeats, reaping.

Every state change is ONE guarded ``UPDATE jobs ... WHERE id = :id AND status IN (...)
RETURNING`` plus a ``job_events`` row in the caller's transaction. A guard that fails returns
``None``: the caller lost a race (another dispatcher, a cancel, the reaper) and must not act.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from nas_service.db.dialect import is_postgres
from nas_service.db.models import Job, JobEvent
from nas_service.db.types import utcnow
from nas_service.domain.states import TERMINAL, TRANSITIONS, JobStatus

ACTIVE = (JobStatus.queued.value, JobStatus.running.value)


def create_job(
    s: Session,
    owner_id: int,
    spec: dict[str, Any],
    *,
    space_id: str,
    name: str | None = None,
    supernet_from: uuid.UUID | None = None,
) -> Job:
    job = Job(
        owner_id=owner_id,
        name=name,
        space_id=space_id,
        spec=spec,
        status=JobStatus.queued.value,
        progress={},
        pareto_history=[],
        supernet_from=supernet_from,
        created_at=utcnow(),
    )
    s.add(job)
    s.flush()
    record_event(s, job.id, "created", to_status=JobStatus.queued, message="job submitted")
    return job


def get_job(s: Session, job_id: uuid.UUID, owner_id: int | None = None) -> Job | None:
    """The job, or None if it does not exist or (when ``owner_id`` is given) is not theirs."""
    q = select(Job).where(Job.id == job_id)
    if owner_id is not None:
        q = q.where(Job.owner_id == owner_id)
    return s.scalars(q).one_or_none()


def list_jobs(
    s: Session,
    owner_id: int,
    *,
    statuses: Sequence[str] = (),
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[Job]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
    q = select(Job).where(Job.owner_id == owner_id)
    if statuses:
        q = q.where(Job.status.in_(list(statuses)))
    if before is not None:
        ts, jid = before
        q = q.where(or_(Job.created_at < ts, and_(Job.created_at == ts, Job.id < jid)))
    q = q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return list(s.scalars(q))


def count_active_jobs(s: Session, owner_id: int) -> int:
    q = select(func.count()).select_from(Job).where(Job.owner_id == owner_id)
    return int(s.scalar(q.where(Job.status.in_(ACTIVE))) or 0)


def record_event(
    s: Session,
    job_id: uuid.UUID,
    kind: str,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Append to the job's event log (transitions, stage changes, runner notes)."""
    ev = JobEvent(
        job_id=job_id,
        ts=utcnow(),
        kind=kind,
        from_status=None if from_status is None else str(from_status),
        to_status=None if to_status is None else str(to_status),
        message=message,
        data=data or {},
    )
    s.add(ev)
    s.flush()
    return ev


def list_events(
    s: Session, job_id: uuid.UUID, *, after: int = 0, limit: int = 200
) -> list[JobEvent]:
    """Oldest first, the events with an id above ``after``."""
    q = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after)
    return list(s.scalars(q.order_by(JobEvent.id).limit(limit)))


def lock_job(s: Session, job_id: uuid.UUID, owner_id: int) -> Job | None:
    """The owner's job, its row locked until the transaction ends (PostgreSQL): a dispatcher's
    claim (``FOR UPDATE SKIP LOCKED``) skips it and a concurrent transition waits."""
    q = select(Job).where(Job.id == job_id, Job.owner_id == owner_id)
    if is_postgres(s):
        q = q.with_for_update()
    return s.scalars(q.execution_options(populate_existing=True)).one_or_none()


def jobs_reusing(s: Session, job_id: uuid.UUID, limit: int = 5) -> list[uuid.UUID]:
    """Jobs (any state) whose ``supernet_from`` is ``job_id``: they need its checkpoint to run,
    resume, retry or export."""
    q = select(Job.id).where(Job.supernet_from == job_id).order_by(Job.created_at, Job.id)
    return list(s.scalars(q.limit(limit)))


def jobs_using_dataset(
    s: Session, owner_id: int, dataset_id: uuid.UUID, limit: int = 5
) -> list[uuid.UUID]:
    """The owner's jobs (any state) whose spec names the uploaded dataset ``dataset_id``."""
    ref = Job.spec[("dataset", "id")].as_string()
    q = select(Job.id).where(Job.owner_id == owner_id, ref == str(dataset_id))
    return list(s.scalars(q.order_by(Job.created_at, Job.id).limit(limit)))


def delete_job(s: Session, job_id: uuid.UUID) -> bool:
    """Delete the job row; its events, metrics, candidates and artifacts go with it (ON DELETE
    CASCADE), jobs that reused its supernet keep running with ``supernet_from`` NULL."""
    stmt = delete(Job).where(Job.id == job_id).returning(Job.id)
    return s.execute(stmt, execution_options={"synchronize_session": False}).first() is not None


def count_by_status(s: Session) -> dict[str, int]:
    """Every job state with its number of jobs (0 for a state without any)."""
    q = select(Job.status, func.count()).group_by(Job.status)
    found = {str(st): int(n) for st, n in s.execute(q).all()}
    return {st.value: found.get(st.value, 0) for st in JobStatus}


def oldest_queued_at(s: Session) -> datetime | None:
    q = select(func.min(Job.created_at)).where(Job.status == JobStatus.queued.value)
    return s.scalar(q)


def worker_heartbeats(s: Session) -> list[tuple[str, int, datetime | None]]:
    """(worker id, running jobs, its latest heartbeat) per worker holding running jobs."""
    q = (
        select(Job.worker_id, func.count(), func.max(Job.heartbeat_at))
        .where(Job.status == JobStatus.running.value, Job.worker_id.is_not(None))
        .group_by(Job.worker_id)
        .order_by(Job.worker_id)
    )
    return [(str(w), int(n), at) for w, n, at in s.execute(q).all()]


def db_now(s: Session) -> datetime:
    """The store's clock (the one heartbeats are stamped with)."""
    if is_postgres(s):
        now = s.scalar(select(func.now()))
        assert isinstance(now, datetime)
        return now
    return utcnow()


def transition(
    s: Session,
    job_id: uuid.UUID,
    to: JobStatus,
    *,
    from_: Iterable[JobStatus] | None = None,
    worker_id: str | None = None,
    values: dict[str, Any] | None = None,
    kind: str = "transition",
    message: str = "",
    data: dict[str, Any] | None = None,
    where: Iterable[ColumnElement[bool]] = (),
) -> Job | None:
    """Move a job to ``to`` if it is in one of ``from_`` (default: every state allowed to enter
    ``to``), when ``worker_id`` is given still owned by that worker, and ``where`` holds."""
    allowed = set(TRANSITIONS[to] if from_ is None else from_)
    illegal = allowed - set(TRANSITIONS[to])
    if illegal:
        raise ValueError(f"transition {sorted(illegal)} -> {to} is not in the state machine")
    # UPDATE ... RETURNING gives the new row only; the old status is read just before.
    prev = select(Job.status).where(Job.id == job_id)
    conds: list[ColumnElement[bool]] = [
        Job.id == job_id,
        Job.status.in_([a.value for a in allowed]),
    ]
    if worker_id is not None:
        conds.append(Job.worker_id == worker_id)
    conds.extend(where)
    set_values: dict[str, Any] = {"status": to.value, **(values or {})}
    if to in TERMINAL:
        set_values.setdefault("finished_at", clock(s))
    if len(allowed) > 1:
        # Several source states: lock the row so the event records the state we really left.
        old = s.scalar(prev.with_for_update()) if is_postgres(s) else s.scalar(prev)
    else:
        old = next(iter(allowed)).value
    stmt = update(Job).where(*conds).values(**set_values).returning(Job)
    opts = {"synchronize_session": False, "populate_existing": True}
    job = s.scalars(stmt.execution_options(**opts)).one_or_none()
    if job is None:
        return None
    record_event(s, job_id, kind, from_status=old, to_status=to, message=message, data=data)
    return job


def clock(s: Session) -> Any:
    """ "Now" for heartbeats and the reaper: the database server's clock on PostgreSQL, so
    workers on machines with skewed clocks still agree; Python's on (single-host) SQLite."""
    return func.now() if is_postgres(s) else utcnow()


def claim_next_job(s: Session, worker_id: str) -> Job | None:
    """Claim the oldest queued job for ``worker_id`` (queued -> running), or None.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` so concurrent dispatchers each lock a different
    row. SQLite: the engine opens transactions with ``BEGIN IMMEDIATE`` (one writer at a time)
    and the guarded UPDATE re-checks the status, so a job is still claimed only once.
    """
    q = (
        select(Job.id)
        .where(Job.status == JobStatus.queued.value)
        .order_by(Job.created_at, Job.id)
        .limit(1)
    )
    if is_postgres(s):
        q = q.with_for_update(skip_locked=True)
    job_id = s.scalar(q)
    if job_id is None:
        return None
    now = clock(s)
    return transition(
        s,
        job_id,
        JobStatus.running,
        from_=[JobStatus.queued],
        values={
            "worker_id": worker_id,
            "heartbeat_at": now,
            "progress_at": now,
            "started_at": func.coalesce(Job.started_at, now),
            "attempt": Job.attempt + 1,
            "finished_at": None,
            "error": None,
        },
        kind="claimed",
        message=f"claimed by {worker_id}",
        data={"worker_id": worker_id},
    )


def heartbeat(
    s: Session,
    job_id: uuid.UUID,
    worker_id: str,
    *,
    stage: str | None = None,
    progress: dict[str, Any] | None = None,
) -> bool | None:
    """Refresh the heartbeat (and stage/progress). Returns ``cancel_requested``, or None when
    the job is no longer running under this worker (reaped or finished): stop working on it.

    Only a report with ``progress`` (the runner's) moves ``progress_at``; the dispatcher's
    plain heartbeat says the worker lives, not that the job moves."""
    now = clock(s)
    values: dict[str, Any] = {"heartbeat_at": now}
    if stage is not None:
        values["stage"] = stage
    if progress is not None:
        values["progress"] = progress
        values["progress_at"] = now
    stmt = (
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.running.value,
            Job.worker_id == worker_id,
        )
        .values(**values)
        .returning(Job.cancel_requested)
    )
    flag = s.execute(stmt.execution_options(synchronize_session=False)).scalar_one_or_none()
    return None if flag is None else bool(flag)


def request_cancel(s: Session, job_id: uuid.UUID, owner_id: int | None = None) -> Job | None:
    """Queued jobs are cancelled at once; running ones get ``cancel_requested`` for the runner.
    Returns the job, or None when it is already finished (or not this owner's)."""
    job = get_job(s, job_id, owner_id)
    if job is None:
        return None
    done = transition(
        s, job_id, JobStatus.cancelled, from_=[JobStatus.queued], message="cancelled while queued"
    )
    if done is not None:
        return done
    stmt = (
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.running.value,
            Job.cancel_requested.is_(False),
        )
        .values(cancel_requested=True)
        .returning(Job.id)
    )
    if s.execute(stmt.execution_options(synchronize_session=False)).first() is not None:
        record_event(s, job_id, "cancel_requested", message="cancel requested")
    s.refresh(job)
    if job.status != JobStatus.running.value:
        return None
    return job


def finish_job(
    s: Session,
    job_id: uuid.UUID,
    worker_id: str,
    status: JobStatus,
    *,
    error: str | None = None,
    message: str = "",
    outcome: dict[str, Any] | None = None,
) -> Job | None:
    """running -> succeeded | failed | cancelled, only by the worker that holds the claim.
    ``outcome`` says what a succeeded job found (a front, or no feasible subnet and why)."""
    if status not in TERMINAL:
        raise ValueError(f"finish_job needs a terminal status, got {status}")
    return transition(
        s,
        job_id,
        status,
        from_=[JobStatus.running],
        worker_id=worker_id,
        values={"error": error, "heartbeat_at": clock(s), "outcome": outcome},
        message=message or f"job {status.value}",
        data={"outcome": outcome} if outcome else None,
    )


def retry_job(s: Session, job_id: uuid.UUID) -> Job | None:
    """failed | cancelled -> queued (a user retry); resumes from stored checkpoints."""
    return transition(
        s,
        job_id,
        JobStatus.queued,
        from_=[JobStatus.failed, JobStatus.cancelled],
        values={
            "cancel_requested": False,
            "worker_id": None,
            "finished_at": None,
            "outcome": None,
        },
        kind="retry",
        message="retry requested",
    )


def requeue_job(
    s: Session, job_id: uuid.UUID, reason: str, worker_id: str | None = None
) -> Job | None:
    """running -> queued: the worker was lost (or gave the job back); it resumes later.

    A job whose cancel was requested is not put back: it ends ``cancelled`` instead, so a queued
    job never carries a stale cancel request (the table's CHECK enforces it too)."""
    cancelled = transition(
        s,
        job_id,
        JobStatus.cancelled,
        from_=[JobStatus.running],
        worker_id=worker_id,
        values={"cancel_requested": False},
        where=[Job.cancel_requested.is_(True)],
        kind="requeued",
        message=f"{reason}; cancel was requested, so the job ends here",
    )
    if cancelled is not None:
        return cancelled
    return transition(
        s,
        job_id,
        JobStatus.queued,
        from_=[JobStatus.running],
        worker_id=worker_id,
        values={"worker_id": None},
        kind="requeued",
        message=reason,
    )


def reap_stale(
    s: Session,
    stale_after: timedelta,
    *,
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Jobs running with a heartbeat older than ``stale_after`` lost their worker. They go back
    to queued (returned ids), except those with a pending cancel (-> cancelled) and those that
    used up ``max_attempts`` (-> failed)."""
    cutoff = (now if now is not None else clock(s)) - stale_after
    q = select(Job.id, Job.attempt, Job.cancel_requested, Job.worker_id).where(
        Job.status == JobStatus.running.value,
        or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff),
    )
    if is_postgres(s):
        q = q.with_for_update(skip_locked=True)
    requeued: list[uuid.UUID] = []
    for job_id, attempt, cancel, worker in s.execute(q).all():
        note = f"no heartbeat for {stale_after.total_seconds():g} s from {worker}"
        if cancel:
            transition(
                s,
                job_id,
                JobStatus.cancelled,
                from_=[JobStatus.running],
                worker_id=worker,
                kind="reaped",
                message=f"{note}; cancel was requested",
            )
        elif max_attempts is not None and attempt >= max_attempts:
            transition(
                s,
                job_id,
                JobStatus.failed,
                from_=[JobStatus.running],
                worker_id=worker,
                values={"error": f"worker lost {attempt} times; giving up"},
                kind="reaped",
                message=note,
            )
        elif requeue_job(s, job_id, note, worker_id=worker) is not None:
            requeued.append(job_id)
    return requeued


def reap_stalled(
    s: Session, stall_after: timedelta, *, now: datetime | None = None
) -> list[uuid.UUID]:
    """Jobs running whose runner reported no progress for ``stall_after`` are failed, with the
    reason in the error and the event: their worker still beats, so ``reap_stale`` never sees
    them, and running them again would hang the same way (say, on a Ray task that waits for a
    resource no node offers). Returns the ids failed here."""
    cutoff = (now if now is not None else clock(s)) - stall_after
    last = func.coalesce(Job.progress_at, Job.started_at)
    q = select(Job.id, Job.stage, Job.worker_id, last).where(
        Job.status == JobStatus.running.value, last < cutoff
    )
    if is_postgres(s):
        q = q.with_for_update(skip_locked=True)
    failed: list[uuid.UUID] = []
    for job_id, stage, worker, at in s.execute(q).all():
        why = (
            f"no progress for over {stall_after.total_seconds():g} s in stage "
            f"'{stage or 'starting'}' (last report {at.isoformat() if at else 'never'}): the "
            "runner is hung or waits for something that never comes, such as a Ray task "
            "needing a resource (a device's ray_resource) that no node offers"
        )
        done = transition(
            s,
            job_id,
            JobStatus.failed,
            from_=[JobStatus.running],
            worker_id=worker,
            # Taken from its worker: the dispatcher holding it sees a job no longer its own and
            # stops the hung task at once.
            values={"error": why, "worker_id": None},
            kind="stalled",
            message=why,
        )
        if done is not None:
            failed.append(job_id)
    return failed


def set_run_info(
    s: Session,
    job_id: uuid.UUID,
    *,
    run_dir: str | None = None,
    checkpoint_uri: str | None = None,
) -> None:
    values: dict[str, Any] = {}
    if run_dir is not None:
        values["run_dir"] = run_dir
    if checkpoint_uri is not None:
        values["checkpoint_uri"] = checkpoint_uri
    if values:
        s.execute(
            update(Job).where(Job.id == job_id).values(**values),
            execution_options={"synchronize_session": False},
        )
