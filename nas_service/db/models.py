"""SQLAlchemy 2 models. Schema changes go through alembic (``migrations/``), which never imports
this module; ``tests/db`` checks that the two agree."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nas_service.db.types import BigId, JsonType, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JOB_STATUSES = "'queued','running','succeeded','failed','cancelled'"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the key
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings, never enough to log in
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("clock IN ('wall','cpu')", name="clock"),
        CheckConstraint("runtime IN ('eager','torchscript')", name="runtime"),
    )

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    torch_device: Mapped[str] = mapped_column(String(32), default="cpu")
    threads: Mapped[int] = mapped_column(Integer, default=1)
    batch_size: Mapped[int] = mapped_column(Integer, default=1)
    ray_resource: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    # How latency is measured (see nas_service.domain.device); added in migration 0003.
    warmup: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    repeats: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    clock: Mapped[str] = mapped_column(String(8), default="wall", server_default="wall")
    runtime: Mapped[str] = mapped_column(String(16), default="eager", server_default="eager")
    paired: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({JOB_STATUSES})", name="status"),
        # A cancel request belongs to a running job: a requeue turns it into a cancel.
        CheckConstraint(
            "NOT (status = 'queued' AND cancel_requested)", name="no_cancel_when_queued"
        ),
        # GET /jobs: newest first per owner, keyset on (created_at, id).
        Index("ix_jobs_owner_created", "owner_id", "created_at", "id"),
        # claim_next_job: oldest queued first.
        Index("ix_jobs_status_created", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    space_id: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the runner last reported progress; the dispatcher's heartbeat does not move it, so a
    # runner that hangs (e.g. waiting for a resource no node has) is seen and reaped.
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    supernet_from: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL")
    )
    run_dir: Mapped[str | None] = mapped_column(Text)
    checkpoint_uri: Mapped[str | None] = mapped_column(Text)
    # Bumped by every set_pareto: the ETag of GET /jobs/{id}/pareto.
    pareto_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    pareto_history: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    # What a finished job found: {"code": "front" | "no_feasible_subnet", "message", ...}.
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class TrainMetric(Base):
    __tablename__ = "train_metrics"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    phase: Mapped[str] = mapped_column(String(64), default="")
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Candidate(Base):
    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("job_id", "genotype", "device"),
        CheckConstraint("source IN ('predicted','measured')", name="source"),
        Index("ix_candidates_job_pareto", "job_id", "is_pareto"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    arch: Mapped[dict[str, Any]] = mapped_column(JsonType)
    genotype: Mapped[str] = mapped_column(Text)  # canonical genes joined by ','
    arch_short: Mapped[str] = mapped_column(Text, default="")
    device: Mapped[str] = mapped_column(String(64), default="cpu")
    accuracy: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    flops: Mapped[int | None] = mapped_column(BigInteger)
    params: Mapped[int | None] = mapped_column(BigInteger)
    predicted_accuracy: Mapped[float | None] = mapped_column(Float)
    # Held-out: the test split neither trains the supernet nor selects the front.
    test_accuracy: Mapped[float | None] = mapped_column(Float)
    predicted_latency_ms: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="predicted")
    feasible: Mapped[bool] = mapped_column(Boolean, default=True)
    is_pareto: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    objectives: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        # One export per (candidate, kind): a repeated download request finds the same row.
        UniqueConstraint("candidate_id", "kind"),
        CheckConstraint("status IN ('pending','ready','failed')", name="status"),
        Index("ix_artifacts_status_kind", "status", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    uri: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))  # set when a worker claims it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="RESTRICT"))
    info: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
