"""Job states and the allowed transitions; artifact and candidate enums."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Stage(StrEnum):
    training = "training"
    predicting = "predicting"
    searching = "searching"
    measuring = "measuring"
    exporting = "exporting"


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
    dataset = "dataset"
    checkpoint = "checkpoint"
    subnet_weights = "subnet_weights"
    subnet_torchscript = "subnet_torchscript"
    subnet_onnx = "subnet_onnx"
    report = "report"


class ArtifactStatus(StrEnum):
    pending = "pending"
    ready = "ready"
    failed = "failed"


EXPORT_FORMATS: dict[str, ArtifactKind] = {
    "weights": ArtifactKind.subnet_weights,
    "torchscript": ArtifactKind.subnet_torchscript,
    "onnx": ArtifactKind.subnet_onnx,
}
EXPORT_EXTENSIONS: dict[ArtifactKind, str] = {
    ArtifactKind.subnet_weights: "pt",
    ArtifactKind.subnet_torchscript: "ts.pt",
    ArtifactKind.subnet_onnx: "onnx",
}


def export_kind(fmt: str) -> ArtifactKind:
    """The artifact kind of a download format (``weights``, ``torchscript``, ``onnx``)."""
    return EXPORT_FORMATS[fmt]
