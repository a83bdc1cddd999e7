"""A job's files under ``data_dir``: its run directory, its log, and their removal.

The runner (``workers.runtime.runner``) runs each job in ``<data_dir>/runs/<job id>`` and its
Python logging writes ``job.log`` there (one line per record, UTC timestamps, every attempt
appended); the API reads that file for ``GET /jobs/{id}/logs``. Both sides take the paths from
here. ``data_dir`` is storage the API and every worker share (README, "Production").
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nas_service.db import Job
from nas_service.domain import ValidationFailed
from nas_service.services.exports import uri_to_path
from nas_service.settings import Settings

LOG_NAME = "job.log"
log = logging.getLogger(__name__)


def runs_root(settings: Settings) -> Path:
    return (settings.data_dir / "runs").resolve()


def run_dir(settings: Settings, job_id: uuid.UUID | str) -> Path:
    return runs_root(settings) / str(job_id)


def log_path(settings: Settings, job_id: uuid.UUID | str) -> Path:
    return run_dir(settings, job_id) / LOG_NAME


def uri_path(uri: str) -> Path:
    return uri_to_path(uri)


def run_dirs(settings: Settings, job: Job) -> list[Path]:
    """The job's run directory, and the one its row records if that differs."""
    out = [run_dir(settings, job.id)]
    if job.run_dir and Path(job.run_dir).resolve() != out[0]:
        out.append(Path(job.run_dir))
    return out


def remove_files(settings: Settings, job_id: uuid.UUID | str, paths: Iterable[Path]) -> int:
    """Remove a deleted job's files: run directories named after the job directly under
    ``<data_dir>/runs``, and artifact files inside ``data_dir``; anything else is left alone
    (a row pointing outside the service's storage is never a reason to delete there).
    Returns how many paths were removed."""
    data = settings.data_dir.resolve()
    runs = runs_root(settings)
    removed = 0
    for p in paths:
        path = p.resolve()
        if path.is_dir():
            if path.parent == runs and path.name == str(job_id):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
            else:
                log.warning("job %s: not removing directory %s (outside its run dir)", job_id, p)
        elif path.is_file():
            if path.is_relative_to(data):
                path.unlink(missing_ok=True)
                removed += 1
            else:
                log.warning("job %s: not removing %s (outside data_dir)", job_id, p)
    return removed


@dataclass(frozen=True)
class LogChunk:
    data: bytes
    offset: int  # where this chunk starts
    next_offset: int  # pass as ?offset= to read on
    size: int  # the log's size when it was read
    more: bool  # the byte limit cut the chunk: more lines can be read now


def read_log(path: Path, offset: int, limit: int, *, finished: bool) -> LogChunk:
    """Up to ``limit`` bytes of the log from byte ``offset``, ending on a whole line: a line the
    runner is still writing is held back until it ends (or the job has finished). A single line
    longer than ``limit`` comes in pieces, so reading always moves on."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0  # not started yet: an empty log
    if offset > size:
        raise ValidationFailed.one(
            "offset", f"{offset} is beyond the end of the log ({size} bytes); start at 0"
        )
    if offset == size:
        return LogChunk(b"", offset, offset, size, False)
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read(limit)
    cut = len(data) >= limit
    if not (finished and not cut):
        end = data.rfind(b"\n") + 1
        if end > 0:
            data = data[:end]
        elif not cut:
            data = b""  # the last line is still being written
    return LogChunk(data, offset, offset + len(data), max(size, offset + len(data)), cut)
