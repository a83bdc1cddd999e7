"""Subnet downloads: serve a ready export, or queue an export request for a worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from sqlalchemy.orm import Session

from nas_service.catalog import exports
from nas_service.db import Artifact, Candidate
from nas_service.db import artifacts as arts
from nas_service.db import jobs as job_repo
from nas_service.db.queries import get_candidate
from nas_service.domain import Conflict, ExportFailed, JobStatus, NotFound, ValidationFailed


@dataclass
class SubnetDownload:
    """Either ``path`` is set (ready: stream it) or the export is still pending."""

    artifact: Artifact
    path: Path | None
    filename: str


def uri_to_path(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri)


def get_owned_candidate(s: Session, owner_id: int, candidate_id: int) -> Candidate:
    cand = get_candidate(s, candidate_id, owner_id)
    if cand is None:
        raise NotFound(f"no candidate {candidate_id}")
    return cand


def subnet_download(
    s: Session, owner_id: int, candidate_id: int, fmt: str, *, retry: bool = False
) -> SubnetDownload:
    """The ready export, or a pending one (created on first request). A failed export is an
    error unless ``retry``, which queues it again."""
    if fmt not in exports.names():
        raise ValidationFailed.one("format", f"unknown format {fmt!r}; allowed: {exports.names()}")
    kind = exports.artifact_kind(fmt)
    cand = get_owned_candidate(s, owner_id, candidate_id)
    name = f"subnet-{cand.job_id.hex[:8]}-{cand.id}.{exports.suffix(fmt)}"
    art = arts.find_artifact(s, cand.id, kind)
    if art is None:
        job = job_repo.get_job(s, cand.job_id)
        assert job is not None
        if job.status in (JobStatus.failed.value, JobStatus.cancelled.value):
            raise Conflict(
                f"job {job.id} is {job.status}: its supernet is not final, so its subnets "
                "cannot be exported (retry the job first)"
            )
        art = arts.request_export(s, cand, owner_id, kind)
    if art.status == "failed" and retry and arts.reset_failed_export(s, art.id):
        refreshed = arts.find_artifact(s, cand.id, kind)
        assert refreshed is not None
        art = refreshed
    if art.status == "failed":
        raise ExportFailed(
            f"the {fmt} export of candidate {cand.id} failed: {art.error} "
            "(ask again with retry=true to try once more)"
        )
    if art.status == "ready" and art.uri:
        path = uri_to_path(art.uri)
        if path.is_file():
            return SubnetDownload(art, path, name)
        raise ExportFailed(
            f"the {fmt} export of candidate {cand.id} is recorded but its file is missing"
        )
    return SubnetDownload(art, None, name)
