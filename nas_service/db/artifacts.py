"""Artifacts: stored files (uploaded datasets, checkpoints, subnet exports, reports) with their
status, uri, sha256 and size. Exports are requested by the API (a ``pending`` row) and made by a
worker, which claims the row, writes the file and marks it ready or failed.

Datasets (``datasets.py``) and devices (``devices.py``) have their own modules."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from nas_service.catalog import exports
from nas_service.db.dialect import insert_for, is_postgres
from nas_service.db.models import Artifact, Candidate, Job
from nas_service.db.types import utcnow
from nas_service.domain.states import ArtifactKind, ArtifactStatus, artifact_kind


def create_artifact(
    s: Session,
    owner_id: int,
    kind: ArtifactKind | str,
    *,
    job_id: uuid.UUID | None = None,
    candidate_id: int | None = None,
    status: ArtifactStatus = ArtifactStatus.pending,
    uri: str | None = None,
    sha256: str | None = None,
    size_bytes: int | None = None,
) -> Artifact:
    now = utcnow()
    art = Artifact(
        owner_id=owner_id,
        kind=artifact_kind(kind),
        job_id=job_id,
        candidate_id=candidate_id,
        status=ArtifactStatus(status).value,
        uri=uri,
        sha256=sha256,
        size_bytes=size_bytes,
        created_at=now,
        updated_at=now,
    )
    s.add(art)
    s.flush()
    return art


def request_export(s: Session, candidate: Candidate, owner_id: int, kind: str) -> Artifact:
    """The export artifact of (candidate, kind), created ``pending`` if there is none yet.
    Idempotent under concurrency: the unique (candidate_id, kind) makes a second insert a
    no-op."""
    now = utcnow()
    stmt = (
        insert_for(s, Artifact)
        .values(
            owner_id=owner_id,
            job_id=candidate.job_id,
            candidate_id=candidate.id,
            kind=artifact_kind(kind),
            status=ArtifactStatus.pending.value,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["candidate_id", "kind"])
    )
    s.execute(stmt)
    found = find_artifact(s, candidate.id, kind)
    assert found is not None
    return found


def find_artifact(s: Session, candidate_id: int, kind: str) -> Artifact | None:
    q = select(Artifact).where(
        Artifact.candidate_id == candidate_id, Artifact.kind == artifact_kind(kind)
    )
    return s.scalars(q.execution_options(populate_existing=True)).one_or_none()


def get_artifact(s: Session, artifact_id: int) -> Artifact | None:
    return s.get(Artifact, artifact_id)


def mark_artifact_ready(
    s: Session, artifact_id: int, *, uri: str, sha256: str, size_bytes: int
) -> bool:
    stmt = (
        update(Artifact)
        .where(Artifact.id == artifact_id)
        .values(
            status=ArtifactStatus.ready.value,
            uri=uri,
            sha256=sha256,
            size_bytes=size_bytes,
            error=None,
            updated_at=utcnow(),
        )
        .returning(Artifact.id)
    )
    return s.execute(stmt, execution_options={"synchronize_session": False}).first() is not None


def mark_artifact_failed(s: Session, artifact_id: int, error: str) -> bool:
    stmt = (
        update(Artifact)
        .where(Artifact.id == artifact_id)
        .values(status=ArtifactStatus.failed.value, error=error, updated_at=utcnow())
        .returning(Artifact.id)
    )
    return s.execute(stmt, execution_options={"synchronize_session": False}).first() is not None


def reset_failed_export(s: Session, artifact_id: int) -> bool:
    """failed -> pending, so a worker tries the export again."""
    stmt = (
        update(Artifact)
        .where(Artifact.id == artifact_id, Artifact.status == ArtifactStatus.failed.value)
        .values(
            status=ArtifactStatus.pending.value, error=None, worker_id=None, updated_at=utcnow()
        )
        .returning(Artifact.id)
    )
    return s.execute(stmt, execution_options={"synchronize_session": False}).first() is not None


def pending_exports(
    s: Session, *, job_id: uuid.UUID | None = None, limit: int = 100
) -> list[Artifact]:
    """Pending export requests, oldest first (claimed or not)."""
    q = select(Artifact).where(
        Artifact.status == ArtifactStatus.pending.value, Artifact.kind.in_(exports.artifact_kinds())
    )
    if job_id is not None:
        q = q.where(Artifact.job_id == job_id)
    return list(s.scalars(q.order_by(Artifact.id).limit(limit)))


def claim_exports(
    s: Session, worker_id: str, *, job_id: uuid.UUID | None = None, limit: int = 10
) -> list[Artifact]:
    """Claim unclaimed pending exports for ``worker_id`` (SKIP LOCKED on PostgreSQL), so two
    workers never make the same export. Without ``job_id`` only exports of succeeded jobs
    (whose supernet is final) are handed out; a runner passes its own ``job_id`` to take the
    requests of the job it is exporting."""
    q = (
        select(Artifact.id)
        .join(Job, Job.id == Artifact.job_id)
        .where(
            Artifact.status == ArtifactStatus.pending.value,
            Artifact.kind.in_(exports.artifact_kinds()),
            Artifact.worker_id.is_(None),
        )
        .order_by(Artifact.id)
        .limit(limit)
    )
    q = q.where(Job.status == "succeeded") if job_id is None else q.where(Job.id == job_id)
    if is_postgres(s):
        q = q.with_for_update(of=Artifact, skip_locked=True)
    ids = list(s.scalars(q))
    if not ids:
        return []
    stmt = (
        update(Artifact)
        .where(Artifact.id.in_(ids), Artifact.worker_id.is_(None))
        .values(worker_id=worker_id, updated_at=utcnow())
        .returning(Artifact)
    )
    opts = {"synchronize_session": False, "populate_existing": True}
    return sorted(s.scalars(stmt.execution_options(**opts)).all(), key=lambda a: a.id)


def release_export(s: Session, artifact_id: int) -> None:
    """Give a claimed export back (the worker stopped before finishing it)."""
    s.execute(
        update(Artifact)
        .where(Artifact.id == artifact_id, Artifact.status == ArtifactStatus.pending.value)
        .values(worker_id=None, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )


def job_artifacts(s: Session, job_id: uuid.UUID) -> list[Artifact]:
    """Every artifact of the job, locked (PostgreSQL) so no worker claims one meanwhile."""
    q = select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.id)
    if is_postgres(s):
        q = q.with_for_update()
    return list(s.scalars(q.execution_options(populate_existing=True)))


def delete_artifact(s: Session, artifact_id: int) -> bool:
    stmt = delete(Artifact).where(Artifact.id == artifact_id).returning(Artifact.id)
    return s.execute(stmt, execution_options={"synchronize_session": False}).first() is not None


def count_pending_exports(s: Session) -> int:
    q = (
        select(func.count())
        .select_from(Artifact)
        .where(
            Artifact.status == ArtifactStatus.pending.value,
            Artifact.kind.in_(exports.artifact_kinds()),
        )
    )
    return int(s.scalar(q) or 0)
