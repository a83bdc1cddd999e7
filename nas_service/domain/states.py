"""Job states and the allowed transitions; artifact and candidate enums."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


# The stages of a running job, in order (the ``stage`` field; the runner's stage modules).
STAGES = ("training", "predicting", "searching", "measuring", "exporting")

TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})

# target -> the states it may be entered from. running -> queued is "worker lost";
# failed|cancelled -> queued is a user retry.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.running: frozenset({JobStatus.queued}),
    JobStatus.succeeded: frozenset({JobStatus.running}),
    JobStatus.failed: frozenset({JobStatus.running}),
    JobStatus.cancelled: frozenset({JobStatus.queued, JobStatus.running}),
    JobStatus.queued: frozenset({JobStatus.running, JobStatus.failed, JobStatus.cancelled}),
}


class CandidateSource(StrEnum):
    predicted = "predicted"
    measured = "measured"


class ArtifactKind(StrEnum):
    """Artifacts the service itself makes; exported subnets have the kinds their export
    formats name in the catalog (``nas_service.catalog.exports``)."""

    dataset = "dataset"
    checkpoint = "checkpoint"
    report = "report"


def artifact_kind(kind: str) -> str:
    """``kind`` if it is an artifact kind (the service's or an export format's), else an error."""
    from nas_service.catalog import exports

    allowed = [k.value for k in ArtifactKind] + exports.artifact_kinds()
    if kind not in allowed:
        raise ValueError(f"unknown artifact kind {kind!r}; allowed: {allowed}")
    return str(kind)


class ArtifactStatus(StrEnum):
    pending = "pending"
    ready = "ready"
    failed = "failed"
