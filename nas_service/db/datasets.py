"""Datasets a user uploaded: a name per owner, the upload format and the artifact holding the
file, plus what the upload check found (``info``: shape, classes, sizes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from nas_service.db.models import Dataset
from nas_service.db.types import utcnow


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


def list_datasets(
    s: Session,
    owner_id: int,
    *,
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[Dataset]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
    q = select(Dataset).where(Dataset.owner_id == owner_id)
    if before is not None:
        ts, did = before
        q = q.where(or_(Dataset.created_at < ts, and_(Dataset.created_at == ts, Dataset.id < did)))
    q = q.order_by(Dataset.created_at.desc(), Dataset.id.desc()).limit(limit)
    return list(s.scalars(q))


def get_dataset_for_share(s: Session, dataset_id: uuid.UUID, owner_id: int) -> Dataset | None:
    """The owner's dataset with a shared row lock (PostgreSQL) held to the end of the
    transaction: a job submitted with it and the dataset's deletion never interleave."""
    q = select(Dataset).where(Dataset.id == dataset_id, Dataset.owner_id == owner_id)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(read=True)
    return s.scalars(q).one_or_none()


def lock_dataset(s: Session, dataset_id: uuid.UUID, owner_id: int) -> Dataset | None:
    """The owner's dataset, its row locked for update until the transaction ends."""
    q = select(Dataset).where(Dataset.id == dataset_id, Dataset.owner_id == owner_id)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return s.scalars(q.execution_options(populate_existing=True)).one_or_none()


def delete_dataset(s: Session, dataset_id: uuid.UUID) -> bool:
    stmt = delete(Dataset).where(Dataset.id == dataset_id).returning(Dataset.id)
    return s.execute(stmt, execution_options={"synchronize_session": False}).first() is not None
