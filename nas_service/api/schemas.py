"""Response models (the OpenAPI contract). Built from ORM rows with ``from_attributes``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class JobOut(_Out):
    id: uuid.UUID
    name: str | None
    status: str = Field(description="queued | running | succeeded | failed | cancelled")
    stage: str | None = Field(
        description="training | predicting | searching | measuring | exporting"
    )
    progress: dict[str, Any] = Field(description="numbers the runner reports (phase, epoch, ...)")
    attempt: int
    cancel_requested: bool
    error: str | None
    outcome: dict[str, Any] | None = Field(
        default=None,
        description=(
            "what a finished job found: code 'front' (a Pareto front per device) or "
            "'no_feasible_subnet' (message says why, with the closest candidates per device)"
        ),
    )
    space_id: str
    spec: dict[str, Any]
    supernet_from: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    pareto_version: int
    elapsed_s: float | None = Field(default=None, description="running time so far, or in all")


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page (also in the Link header); null at the end"
    )


class EventOut(_Out):
    id: int
    ts: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    message: str
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page (also in the Link header); null at the end"
    )


class MetricOut(_Out):
    seq: int
    phase: str
    epoch: int
    step: int
    metrics: dict[str, Any]
    ts: datetime


class MetricPage(BaseModel):
    items: list[MetricOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page (also in the Link header); null at the end"
    )


class CandidateOut(_Out):
    id: int
    job_id: uuid.UUID
    arch: dict[str, Any]
    genotype: str
    arch_short: str
    device: str
    accuracy: float | None = Field(
        description="validation-split accuracy (the split the search selected on)"
    )
    test_accuracy: float | None = Field(
        default=None,
        description=(
            "held-out test-split accuracy (never used to train or select); measured for "
            "re-measured candidates, null otherwise or when the dataset has no test split"
        ),
    )
    latency_ms: float | None
    flops: int | None
    params: int | None
    predicted_accuracy: float | None
    predicted_latency_ms: float | None
    source: str = Field(description="predicted | measured")
    feasible: bool
    is_pareto: bool
    objectives: dict[str, Any]
    created_at: datetime


class CandidatePage(BaseModel):
    items: list[CandidateOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page (also in the Link header); null at the end"
    )


class ParetoOut(BaseModel):
    job_id: uuid.UUID
    status: str
    version: int = Field(description="bumped whenever the front changes (also the ETag)")
    final: bool = Field(description="true once the job succeeded: the measured front")
    front: list[CandidateOut]
    hypervolume_history: list[dict[str, Any]]
    outcome: dict[str, Any] | None = Field(
        default=None, description="the job's outcome once it finished (see JobOut.outcome)"
    )


class DatasetOut(_Out):
    id: uuid.UUID
    name: str
    format: str
    info: dict[str, Any]
    created_at: datetime


class DatasetRegister(BaseModel):
    """A dataset already on the server, registered by its path (or ``file://`` URI) under one
    of the server's ``dataset_roots``; converted into the store like an upload."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096, description="absolute path or file:// URI")
    name: str | None = Field(default=None, description="default: the file or folder name")
    format: str | None = Field(
        default=None, description="default: from the file's suffix (required for a folder)"
    )


class DatasetList(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page (also in the Link header); null at the end"
    )


class SpaceOut(BaseModel):
    id: str
    description: str
    modality: str = Field(description="image | table | any: the data the space takes")
    data_bound: list[str] = Field(description="options set from the dataset, not the user")
    default_spec: dict[str, Any]
    num_dims: int
    dims_by_kind: dict[str, dict[str, Any]]
    size: str | None
    flops_range: list[int]
    params_range: list[int]


class SpaceList(BaseModel):
    items: list[SpaceOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page (also in the Link header); null at the end"
    )


class CatalogEntryOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # each kind adds its own facts

    kind: str
    name: str
    summary: str
    options_schema: dict[str, Any] | None = Field(
        description="JSON schema of the entry's options (search.options, dataset.options, ...)"
    )


class CatalogKindOut(BaseModel):
    description: str
    entries: list[CatalogEntryOut]


class JobStatesOut(BaseModel):
    statuses: list[str]
    terminal: list[str]
    stages: list[str] = Field(description="the stages of a running job, in order")


class CatalogOut(BaseModel):
    job: JobStatesOut
    kinds: dict[str, CatalogKindOut] = Field(
        description="every vocabulary a job spec uses: space, searcher, dataset, objective, "
        "export, device_runtime, training_preset, sampler"
    )


class DeviceOut(_Out):
    name: str
    torch_device: str
    threads: int
    batch_size: int
    ray_resource: str | None
    description: str
    warmup: int
    repeats: int
    clock: str
    runtime: str
    paired: bool


class DeviceList(BaseModel):
    items: list[DeviceOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page (also in the Link header); null at the end"
    )


class ExportPending(BaseModel):
    artifact_id: int
    status: str
    retry_after_s: int


class Health(BaseModel):
    status: str
    database: str | None = None
    revision: str | None = None
    head: str | None = None
