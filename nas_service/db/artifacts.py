"""Artifacts (datasets, checkpoints, subnet exports, reports), datasets, devices, latency
tables. Exports are requested by the API (a ``pending`` row) and made by a worker, which
claims the row, writes the file and marks it ready or failed."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nas_service.db.dialect import insert_for, is_postgres
from nas_service.db.models import Artifact, Candidate, Dataset, Device, Job, LatencyTable
from nas_service.db.types import utcnow
from nas_service.domain.states import ArtifactKind, ArtifactStatus

EXPORT_KINDS = (
    ArtifactKind.subnet_weights.value,
    ArtifactKind.subnet_torchscript.value,
    ArtifactKind.subnet_onnx.value,
)


def create_artifact(
    s: Session,
    owner_id: int,
    kind: ArtifactKind,
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
        kind=ArtifactKind(kind).value,
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


def request_export(s: Session, candidate: Candidate, owner_id: int, kind: ArtifactKind) -> Artifact:
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
            kind=ArtifactKind(kind).value,
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


def find_artifact(s: Session, candidate_id: int, kind: ArtifactKind) -> Artifact | None:
    q = select(Artifact).where(
        Artifact.candidate_id == candidate_id, Artifact.kind == ArtifactKind(kind).value
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
        Artifact.status == ArtifactStatus.pending.value, Artifact.kind.in_(EXPORT_KINDS)
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
            Artifact.kind.in_(EXPORT_KINDS),
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


# ----- datasets ---------------------------------------------------------------------------


def create_dataset(
    s: Session, owner_id: int, name: str, fmt: str, artifact_id: int, info: dict[str, Any]
) -> Dataset:
    ds = Dataset(
        owner_id=owner_id,
        name=name,
        format=fmt,
        artifact_id=artifact_id,
        info=info,
        created_at=utcnow(),
    )
    s.add(ds)
    s.flush()
    return ds


def get_dataset(s: Session, dataset_id: uuid.UUID, owner_id: int | None = None) -> Dataset | None:
    q = select(Dataset).where(Dataset.id == dataset_id)
    if owner_id is not None:
        q = q.where(Dataset.owner_id == owner_id)
    return s.scalars(q).one_or_none()


def dataset_name_taken(s: Session, owner_id: int, name: str) -> bool:
    q = select(Dataset.id).where(Dataset.owner_id == owner_id, Dataset.name == name)
    return s.scalar(q) is not None


def list_datasets(s: Session, owner_id: int) -> list[Dataset]:
    q = select(Dataset).where(Dataset.owner_id == owner_id)
    return list(s.scalars(q.order_by(Dataset.created_at.desc(), Dataset.name)))


# ----- devices and latency tables ---------------------------------------------------------


def list_devices(s: Session) -> list[Device]:
    return list(s.scalars(select(Device).order_by(Device.name)))


def get_device(s: Session, name: str) -> Device | None:
    return s.get(Device, name)


def upsert_device(
    s: Session,
    name: str,
    *,
    torch_device: str = "cpu",
    threads: int = 1,
    batch_size: int = 1,
    ray_resource: str | None = None,
    description: str = "",
    warmup: int = 10,
    repeats: int = 50,
    clock: str = "wall",
    runtime: str = "eager",
    paired: bool = False,
) -> Device:
    """Create or replace a device (validate with ``nas_service.domain.DeviceSpec`` first)."""
    values = {
        "name": name,
        "torch_device": torch_device,
        "threads": threads,
        "batch_size": batch_size,
        "ray_resource": ray_resource,
        "description": description,
        "warmup": warmup,
        "repeats": repeats,
        "clock": clock,
        "runtime": runtime,
        "paired": paired,
    }
    ins = insert_for(s, Device).values(**values)
    s.execute(
        ins.on_conflict_do_update(
            index_elements=["name"], set_={k: v for k, v in values.items() if k != "name"}
        )
    )
    dev = s.scalars(
        select(Device).where(Device.name == name).execution_options(populate_existing=True)
    ).one()
    return dev


def active_jobs_targeting(s: Session, device: str) -> list[str]:
    """Ids of the queued or running jobs whose spec names ``device``."""
    q = select(Job.id, Job.spec).where(Job.status.in_(("queued", "running")))
    return [str(i) for i, spec in s.execute(q) if device in (spec or {}).get("devices", [])]


def upsert_latency_table(
    s: Session, device: str, space_hash: str, uri: str, rows: int
) -> LatencyTable:
    ins = insert_for(s, LatencyTable).values(
        device=device, space_hash=space_hash, uri=uri, rows=rows, created_at=utcnow()
    )
    s.execute(
        ins.on_conflict_do_update(
            index_elements=["device", "space_hash"],
            set_={"uri": uri, "rows": rows, "created_at": utcnow()},
        )
    )
    found = get_latency_table(s, device, space_hash)
    assert found is not None
    return found


def get_latency_table(s: Session, device: str, space_hash: str) -> LatencyTable | None:
    q = select(LatencyTable).where(
        LatencyTable.device == device, LatencyTable.space_hash == space_hash
    )
    return s.scalars(q.execution_options(populate_existing=True)).one_or_none()
