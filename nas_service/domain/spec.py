"""The job specification submitted to ``POST /jobs`` and read by the runner.

This module checks what can be checked without the store: types, ranges, duplicates, and every
name against the catalog (``nas_service.catalog``: algorithms, objectives and their directions
and bounds, built-in datasets, training presets and samplers), whose names are also the OpenAPI
enums. ``nas_service.services.jobs`` checks the rest (the space fitted to the dataset, search
and dataset options, dataset ownership, devices, limits, ``supernet_from``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nas_service.catalog import CATALOG, datasets, objectives, searchers, training
from nas_service.catalog.datasets.augment import AugmentOptions


def _enum(names: Callable[[], list[str]]) -> Callable[[dict[str, Any]], None]:
    """OpenAPI enum read from the catalog when the schema is built."""

    def extra(schema: dict[str, Any]) -> None:
        schema["enum"] = names()

    return extra


def _known(kind: str, value: str, field: str) -> str:
    if value not in CATALOG.names(kind):
        raise ValueError(f"unknown {field} {value!r}; allowed: {CATALOG.names(kind)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpaceRef(_Strict):
    id: str = Field(min_length=1, max_length=64, examples=["mbv3"])
    options: dict[str, Any] = Field(default_factory=dict, examples=[{"num_classes": 10}])


class DatasetRef(_Strict):
    """Exactly one of ``name`` (a built-in dataset) or ``id`` (an uploaded one)."""

    name: str | None = Field(default=None, json_schema_extra=_enum(datasets.builtin_names))
    id: UUID | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _builtin(cls, v: str | None) -> str | None:
        if v is not None and v not in datasets.builtin_names():
            raise ValueError(
                f"unknown built-in dataset {v!r}; allowed: {datasets.builtin_names()} "
                "(an uploaded dataset is given by 'id')"
            )
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.name is None) == (self.id is None):
            raise ValueError(
                f"give exactly one of 'name' ({', '.join(datasets.builtin_names())}) or 'id'"
            )
        return self


class TrainingSpec(_Strict):
    preset: str = Field(default="tiny", json_schema_extra=_enum(training.preset_names))
    epochs_scale: float = Field(default=1.0, gt=0)
    sampler: str = Field(
        default="complexity-aware", json_schema_extra=_enum(training.sampler_names)
    )
    sampler_policy: str | None = Field(default=None, json_schema_extra=_enum(training.all_policies))
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    lr: float | None = Field(default=None, gt=0, le=10)
    # Image augmentation of the training batches (random crop or resized crop, flips); none
    # by default.
    augment: AugmentOptions | None = None

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        return _known(training.PRESET, v, "preset")

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, v: str) -> str:
        return _known(training.SAMPLER, v, "sampler")

    @field_validator("sampler_policy")
    @classmethod
    def _known_policy_name(cls, v: str | None) -> str | None:
        if v is not None and v not in training.all_policies():
            raise ValueError(f"unknown sampler_policy {v!r}; allowed: {training.all_policies()}")
        return v

    @model_validator(mode="after")
    def _known_policy(self) -> Self:
        allowed = training.sampler_policies(self.sampler)
        if self.sampler_policy in training.all_policies() and self.sampler_policy not in allowed:
            raise ValueError(
                f"sampler_policy {self.sampler_policy!r} does not apply to sampler "
                f"'{self.sampler}'; allowed: {allowed}"
            )
        return self


class ObjectiveSpec(_Strict):
    """``bound`` is a constraint: a floor for a maximised objective, a ceiling otherwise.
    ``direction`` defaults to the only one that makes sense for the objective."""

    name: str = Field(json_schema_extra=_enum(objectives.names))
    direction: Literal["min", "max"] | None = None
    bound: float | None = None

    @field_validator("name")
    @classmethod
    def _known_name(cls, v: str) -> str:
        return _known(objectives.KIND, v, "objective")

    @field_validator("direction")
    @classmethod
    def _direction(cls, v: str | None, info: ValidationInfo) -> str | None:
        name = info.data.get("name")
        if v is None or not isinstance(name, str):
            return v
        expected = objectives.direction(name)
        if v != expected:
            verb = "maximised" if expected == "max" else "minimised"
            raise ValueError(f"{name} can only be {verb} (direction '{expected}'), got '{v}'")
        return v

    @field_validator("bound")
    @classmethod
    def _bound(cls, b: float | None, info: ValidationInfo) -> float | None:
        name = info.data.get("name")
        if b is None or not isinstance(name, str):
            return b
        why = objectives.bound_error(name, b)
        if why:
            raise ValueError(why)
        return b

    @model_validator(mode="after")
    def _default_direction(self) -> Self:
        if self.direction is None:
            self.direction = objectives.direction(self.name)  # type: ignore[assignment]
        return self


class SearchSpec(_Strict):
    algorithm: str = Field(default="evolution", json_schema_extra=_enum(searchers.names))
    budget: int = Field(default=100, ge=1)
    population: int | None = Field(default=None, ge=2)
    objectives: list[ObjectiveSpec] = Field(
        default_factory=lambda: [ObjectiveSpec(name="accuracy"), ObjectiveSpec(name="flops")],
        min_length=1,
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="the algorithm's options (see GET /api/v1/catalog)"
    )

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, v: str) -> str:
        return _known(searchers.KIND, v, "algorithm")

    @field_validator("objectives")
    @classmethod
    def _unique(cls, v: list[ObjectiveSpec]) -> list[ObjectiveSpec]:
        seen: set[str] = set()
        for o in v:
            if o.name in seen:
                raise ValueError(f"objective '{o.name}' is listed twice")
            seen.add(o.name)
        return v


class ResourcesSpec(_Strict):
    """Where the supernet trains: data-parallel workers (Ray Train), each with its CPUs and
    GPUs; ``precision`` ``bf16`` autocasts on CUDA (CPU workers train in fp32); ``sync_bn``
    says whose batch a batch-norm layer normalises with on several workers. The service
    checks them at submit against the cluster's capacity (``services.jobs``)."""

    workers: int = Field(default=1, ge=1, le=64, description="data-parallel training workers")
    cpus_per_worker: float = Field(default=1.0, gt=0, le=256)
    gpus_per_worker: float = Field(default=0.0, ge=0, le=16)
    precision: Literal["fp32", "bf16"] = "fp32"
    sync_bn: bool = Field(
        default=False,
        description=(
            "with several workers, batch norm normalises with the global batch's statistics, "
            "so the run computes what one worker would, at two more all-reduces per "
            "batch-norm layer and subnet in every step; false (default): each worker's own "
            "share, as plain DDP"
        ),
    )


def _nul_path(value: Any, path: str) -> str | None:
    """The path of the first string holding a NUL character (PostgreSQL text cannot)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            found = _nul_path(k, sub) or _nul_path(v, sub)
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _nul_path(v, f"{path}[{i}]")
            if found:
                return found
    return None


class JobSpec(_Strict):
    name: str | None = Field(default=None, max_length=200)
    space: SpaceRef
    dataset: DatasetRef
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    devices: list[str] = Field(default_factory=lambda: ["cpu"], min_length=1, max_length=16)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    supernet_from: UUID | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = _nul_path(data, "")
        if where:
            raise ValueError(f"{where}: text may not contain NUL characters")
        return data

    @field_validator("devices")
    @classmethod
    def _unique_devices(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"devices are listed more than once: {v}")
        return v
