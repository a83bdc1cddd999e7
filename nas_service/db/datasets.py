"""Datasets a user uploaded: a name per owner, the upload format and the artifact holding the
file, plus what the upload check found (``info``: shape, classes, sizes)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
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


def list_datasets(s: Session, owner_id: int) -> list[Dataset]:
    q = select(Dataset).where(Dataset.owner_id == owner_id)
    return list(s.scalars(q.order_by(Dataset.created_at.desc(), Dataset.name)))
