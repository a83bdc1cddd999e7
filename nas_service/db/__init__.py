"""The store: models, engine, migrations helper and repository functions.

Repository functions take a ``Session`` and never commit: the caller owns the transaction
(``with db.transaction() as s: ...``), so several calls can share one.
"""

from nas_service.db.engine import Database, make_engine
from nas_service.db.models import (
    ApiKey,
    Artifact,
    Base,
    Candidate,
    Dataset,
    Device,
    Job,
    JobEvent,
    TrainMetric,
)

__all__ = [
    "ApiKey",
    "Artifact",
    "Base",
    "Candidate",
    "Database",
    "Dataset",
    "Device",
    "Job",
    "JobEvent",
    "TrainMetric",
    "make_engine",
]
