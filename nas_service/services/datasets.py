"""Storing datasets: an upload (validated, checksummed, moved under ``data_dir``) or a
server-side path under an allowed root (``dataset_roots``), converted once into the on-disk
store the workers map (``nas_service.catalog.datasets.store``), and recorded."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

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

log = logging.getLogger(__name__)

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
    lower = filename.lower()
    # The longest suffix that matches ("x.tar.gz" is cifar's, not a ".gz").
    fmt = next(
        (by_suffix[k] for k in sorted(by_suffix, key=len, reverse=True) if lower.endswith(k)),
        None,
    )
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


def datasets_dir(settings: Settings) -> Path:
    d = (settings.data_dir / "datasets").resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


def _convert(
    settings: Settings, fmt: str, source: Path, label: str
) -> tuple[dict[str, Any], Path | None]:
    """Check ``source`` and, for a format with a converter, write its store under the datasets
    folder: (the stored info, the store or None). Nothing is left on failure."""
    convert = datasets.converter(fmt)
    if convert is None:
        return datasets.inspector(fmt)(source, settings), None
    from nas_service.catalog.datasets.store import STORE_SUFFIX, log_progress

    dest = datasets_dir(settings) / f"{uuid.uuid4()}{STORE_SUFFIX}"
    log.info("dataset %s: converting %s (%s) into %s", label, source, fmt, dest)
    info = convert(source, settings, dest, log_progress(f"dataset {label}"))
    info["store"] = str(dest)
    return info, dest


def store_dataset(
    s: Session,
    settings: Settings,
    owner_id: int,
    name: str,
    fmt: str,
    tmp_path: Path,
) -> Dataset:
    """Validate ``tmp_path`` (removed in every case), convert it into the store where the
    format has a converter, and keep the upload as a ready artifact."""
    store: Path | None = None
    try:
        check_name(s, owner_id, name)
        digest, size = _sha256(tmp_path)
        info, store = _convert(settings, fmt, tmp_path, name)
        dest = datasets_dir(settings) / f"{uuid.uuid4()}{datasets.suffix(fmt)}"
        shutil.move(str(tmp_path), dest)  # same filesystem as data_dir/tmp: an atomic rename
    except BaseException:
        _remove_tree(store)
        raise
    finally:
        tmp_path.unlink(missing_ok=True)
    return _record(s, owner_id, name, fmt, dest, store, digest, size, info)


def _record(
    s: Session,
    owner_id: int,
    name: str,
    fmt: str,
    source: Path,
    store: Path | None,
    digest: str | None,
    size: int,
    info: dict[str, Any],
    *,
    owned: bool = True,
) -> Dataset:
    try:
        art = arts.create_artifact(
            s,
            owner_id,
            ArtifactKind.dataset,
            status=ArtifactStatus.ready,
            uri=str(source),
            sha256=digest,
            size_bytes=size,
        )
        if digest is not None:
            info["sha256"] = digest
        info["size_bytes"] = size
        return dataset_repo.create_dataset(s, owner_id, name, fmt, art.id, info)
    except Exception:
        if owned:
            source.unlink(missing_ok=True)  # keep no file without its row
        _remove_tree(store)
        raise


def resolve_registered_path(settings: Settings, raw: str) -> Path:
    """The server-side path (or ``file://`` URI) of a dataset to register, refused unless it
    exists and lies under one of ``settings.dataset_roots`` (symlinks resolved first, so a link
    cannot lead out of a root)."""
    if not settings.dataset_roots:
        raise ValidationFailed.one(
            "path",
            "registering datasets by path is off on this server: its dataset_roots setting "
            "(NAS_DATASET_ROOTS) names no folder; upload the file instead",
        )
    text = raw.strip()
    if "://" in text:
        uri = urlparse(text)
        if uri.scheme != "file" or uri.netloc not in ("", "localhost"):
            raise ValidationFailed.one(
                "path", f"{raw!r}: only local paths and file:// URIs can be registered"
            )
        text = unquote(uri.path)
    p = Path(text)
    if not p.is_absolute():
        raise ValidationFailed.one("path", f"{raw!r}: give an absolute path on the server")
    target = p.resolve()
    roots = [Path(r).resolve() for r in settings.dataset_roots]
    if not any(target == r or target.is_relative_to(r) for r in roots):
        raise ValidationFailed.one(
            "path",
            f"{raw!r} is outside the allowed dataset roots {[str(r) for r in roots]}",
        )
    if not target.exists():
        raise ValidationFailed.one("path", f"{raw!r}: no such file or folder on the server")
    return target


def register_path(
    s: Session,
    settings: Settings,
    owner_id: int,
    name: str,
    fmt: str | None,
    raw_path: str,
) -> Dataset:
    """Register a server-side dataset by path: checked and converted into the store like an
    upload; the source stays where it is (the artifact points at it, and it is never
    deleted by the service)."""
    source = resolve_registered_path(settings, raw_path)
    fmt = format_of(source.name, fmt) if fmt or source.is_file() else None
    if fmt is None:
        raise ValidationFailed.one(
            "format", f"{raw_path!r} is a folder: say its format ({datasets.upload_formats()})"
        )
    check_name(s, owner_id, name)
    if source.is_dir() and datasets.converter(fmt) is None:
        raise ValidationFailed.one(
            "path", f"format {fmt!r} is registered from a file, not a folder"
        )
    size = _tree_size(source)
    info, store = _convert(settings, fmt, source, name)
    info["registered_path"] = str(source)
    return _record(s, owner_id, name, fmt, source, store, None, size, info, owned=False)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _remove_tree(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


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


def delete_dataset(s: Session, owner_id: int, dataset_id: uuid.UUID) -> list[Path]:
    """Delete the dataset row and its artifact; returns the stored file and store, for the
    caller to remove after the commit. Refused while a job of the owner names the dataset:
    jobs resume, retry and export from it (delete those jobs first). The row is locked, so a
    job submitted at the same moment either sees no dataset or holds its share lock first
    (then this waits and sees the job)."""
    ds = dataset_repo.lock_dataset(s, dataset_id, owner_id)
    if ds is None:
        raise NotFound(f"no dataset {dataset_id}")
    users = job_repo.jobs_using_dataset(s, owner_id, dataset_id)
    if users:
        raise DatasetInUse(
            f"jobs {', '.join(str(u) for u in users)} use this dataset: delete them first"
        )
    art = arts.get_artifact(s, ds.artifact_id)
    store = (ds.info or {}).get("store")
    dataset_repo.delete_dataset(s, dataset_id)
    out = [Path(store)] if store else []
    if art is None:
        return out
    arts.delete_artifact(s, art.id)
    return ([uri_to_path(art.uri)] if art.uri else []) + out


def remove_stored_file(settings: Settings, paths: Path | list[Path] | None) -> bool:
    """Remove a deleted dataset's file and store where they lie in the service's dataset
    folder (a registered source elsewhere is the owner's and stays)."""
    if paths is None:
        return False
    removed = False
    home = (settings.data_dir / "datasets").resolve()
    for path in [paths] if isinstance(paths, Path) else paths:
        target = path.resolve()
        if target.parent != home:
            continue
        if target.is_file():
            target.unlink(missing_ok=True)
            removed = True
        elif target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            removed = True
    return removed
