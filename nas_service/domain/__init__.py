"""Pure domain layer: enums, the job state machine, the job spec and the domain exceptions."""

from nas_service.domain.errors import (
    Conflict,
    DomainError,
    ExportFailed,
    FieldError,
    NotFound,
    PayloadTooLarge,
    TooManyJobs,
    Unauthorized,
    ValidationFailed,
)
from nas_service.domain.spec import (
    DatasetRef,
    JobSpec,
    ObjectiveSpec,
    SearchSpec,
    SpaceRef,
    TrainingSpec,
)
from nas_service.domain.states import (
    STAGES,
    TERMINAL,
    TRANSITIONS,
    ArtifactKind,
    ArtifactStatus,
    CandidateSource,
    JobStatus,
)

__all__ = [
    "STAGES",
    "TERMINAL",
    "TRANSITIONS",
    "ArtifactKind",
    "ArtifactStatus",
    "CandidateSource",
    "Conflict",
    "DatasetRef",
    "DomainError",
    "ExportFailed",
    "FieldError",
    "JobSpec",
    "JobStatus",
    "NotFound",
    "ObjectiveSpec",
    "PayloadTooLarge",
    "SearchSpec",
    "SpaceRef",
    "TooManyJobs",
    "TrainingSpec",
    "Unauthorized",
    "ValidationFailed",
]
