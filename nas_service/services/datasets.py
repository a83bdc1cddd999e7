"""Storing uploaded datasets: validate, checksum, move under ``data_dir``, record."""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from nas_service.catalog import datasets
from nas_service.db import Dataset
from nas_service.db import artifacts as arts
from nas_service.db import datasets as dataset_repo
from nas_service.db import jobs as job_repo
from nas_service.domain import (
    ArtifactKind,
    ArtifactStatus,
    Conflict,
    FieldError,
    NotFound,
    ValidationFailed,
)
from nas_service.services.exports import uri_to_path
from nas_service.services.pagination import (
    Page,
    as_datetime,
    as_uuid,
    decode_cursor,
    encode_cursor,
    page_of,
)
from nas_service.settings import Settings

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def upload_dir(settings: Settings) -> Path:
    d = settings.data_dir / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return d


def format_of(filename: str, declared: str | None) -> str:
    """The upload format: the one declared, else the one the file's suffix names."""
    formats = datasets.upload_formats()
    if declared is not None:
        if declared not in formats:
            raise ValidationFailed.one("format", f"unknown format {declared!r}; allowed: {formats}")
        return declared
    by_suffix = datasets.upload_suffixes()
    fmt = by_suffix.get(Path(filename).suffix.lower())
    if fmt is None:
        raise ValidationFailed.one(
            "file",
            f"cannot tell the format of {filename!r}: upload a file ending in one of "
            f"{sorted(by_suffix)} ({', '.join(formats)})",
        )
    return fmt


def check_name(s: Session, owner_id: int, name: str) -> None:
    if not NAME_RE.match(name):
        raise ValidationFailed.one(
            "name", f"{name!r}: use 1-100 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    if dataset_repo.dataset_name_taken(s, owner_id, name):
        raise Conflict(f"this key already has a dataset named {name!r}")


def store_dataset(
    s: Session,
    settings: Settings,
    owner_id: int,
    name: str,
    fmt: str,
    tmp_path: Path,
) -> Dataset:
    """Validate ``tmp_path`` (removed in every case) and store it as a ready artifact."""
    try:
        check_name(s, owner_id, name)
        info = datasets.inspector(fmt)(tmp_path, settings)
        digest, size = _sha256(tmp_path)
        dest_dir = (settings.data_dir / "datasets").resolve()
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"{uuid.uuid4()}{datasets.suffix(fmt)}"
        shutil.move(str(tmp_path), dest)  # same filesystem as data_dir/tmp: an atomic rename
    finally:
        tmp_path.unlink(missing_ok=True)
    try:
        art = arts.create_artifact(
            s,
            owner_id,
            ArtifactKind.dataset,
            status=ArtifactStatus.ready,
            uri=str(dest),
            sha256=digest,
            size_bytes=size,
        )
        info["sha256"] = digest
        info["size_bytes"] = size
        return dataset_repo.create_dataset(s, owner_id, name, fmt, art.id, info)
    except Exception:
        dest.unlink(missing_ok=True)  # keep no file without its row
        raise


def _sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def get_owned_dataset(s: Session, owner_id: int, dataset_id: uuid.UUID) -> Dataset:
    ds = dataset_repo.get_dataset(s, dataset_id, owner_id)
    if ds is None:
        raise NotFound(f"no dataset {dataset_id}")
    return ds


def list_datasets(s: Session, owner_id: int, cursor: str | None, limit: int) -> Page[Dataset]:
    """Newest first."""
    before = None
    if cursor:
        ts, did = decode_cursor(cursor, "datasets", as_datetime, as_uuid)
        before = (ts, did)
    rows = dataset_repo.list_datasets(s, owner_id, before=before, limit=limit + 1)
    return page_of(rows, limit, lambda d: encode_cursor("datasets", d.created_at, d.id))


class DatasetInUse(Conflict):
    code = "in_use"
    title = "In use"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.errors = [FieldError("dataset_id", reason)]


def delete_dataset(s: Session, owner_id: int, dataset_id: uuid.UUID) -> Path | None:
    """Delete the dataset row and its artifact; returns the stored file, for the caller to
    remove after the commit. Refused while a job of the owner names the dataset: jobs resume,
    retry and export from it (delete those jobs first). The row is locked, so a job submitted
    at the same moment either sees no dataset or holds its share lock first (then this waits
    and sees the job)."""
    ds = dataset_repo.lock_dataset(s, dataset_id, owner_id)
    if ds is None:
        raise NotFound(f"no dataset {dataset_id}")
    users = job_repo.jobs_using_dataset(s, owner_id, dataset_id)
    if users:
        raise DatasetInUse(
            f"jobs {', '.join(str(u) for u in users)} use this dataset: delete them first"
        )
    art = arts.get_artifact(s, ds.artifact_id)
    dataset_repo.delete_dataset(s, dataset_id)
    if art is None:
        return None
    arts.delete_artifact(s, art.id)
    return uri_to_path(art.uri) if art.uri else None


def remove_stored_file(settings: Settings, path: Path | None) -> bool:
    """Remove a deleted dataset's file if it lies in the service's dataset folder."""
    if path is None:
        return False
    target = path.resolve()
    if target.parent != (settings.data_dir / "datasets").resolve() or not target.is_file():
        return False
    target.unlink(missing_ok=True)
    return True
