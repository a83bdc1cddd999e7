"""A job's stages (training -> predicting -> searching -> measuring -> exporting), written
against a ``JobSink`` (where results go) and an ``Engine`` (where the work runs)."""

from workers.pipeline.engine import Engine, ExportResult, LocalEngine, TrainRequest
from workers.pipeline.job import DataRef, DeviceInfo, JobInputs
from workers.pipeline.sink import (
    ArtifactRecord,
    CandidateRecord,
    JobCancelled,
    JobSink,
    MemorySink,
)
from workers.pipeline.stages import PipelineResult, build_space, run_pipeline

__all__ = [
    "ArtifactRecord",
    "CandidateRecord",
    "DataRef",
    "DeviceInfo",
    "Engine",
    "ExportResult",
    "JobCancelled",
    "JobInputs",
    "JobSink",
    "LocalEngine",
    "MemorySink",
    "PipelineResult",
    "TrainRequest",
    "build_space",
    "run_pipeline",
]
