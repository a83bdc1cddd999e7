"""A job's stages (training -> predicting -> searching -> measuring -> exporting), written
against a ``JobSink`` (where results go) and an ``Engine`` (where the units of work run)."""

from workers.pipeline.engine import Engine, LocalEngine, Placement, unit
from workers.pipeline.job import DataRef, DeviceInfo, JobInputs
from workers.pipeline.records import EpochReport, ExportResult, Progress, TrainRequest
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
    "EpochReport",
    "ExportResult",
    "JobCancelled",
    "JobInputs",
    "JobSink",
    "LocalEngine",
    "MemorySink",
    "PipelineResult",
    "Placement",
    "Progress",
    "TrainRequest",
    "build_space",
    "run_pipeline",
    "unit",
]
