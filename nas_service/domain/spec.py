"""The job specification submitted to ``POST /jobs`` and read by the runner.

This module checks what can be checked without the store or the space registry (types, ranges,
duplicates, directions, bounds). ``nas_service.services.jobs`` checks the rest (space options,
dataset ownership, devices, limits, ``supernet_from``).
"""

from __future__ import annotations

import math
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

BUILTIN_DATASETS = ("digits", "synthetic")
OBJECTIVES = ("accuracy", "latency_ms", "flops", "params")
# The direction that makes sense for each objective: accuracy is maximised, costs minimised.
OBJECTIVE_DIRECTIONS: dict[str, str] = {
    "accuracy": "max",
    "latency_ms": "min",
    "flops": "min",
    "params": "min",
}
SAMPLER_POLICIES = ("uniform-bins", "neighbour-bins", "adaptive-bins", "best-of-k")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpaceRef(_Strict):
    id: str = Field(min_length=1, max_length=64, examples=["mbv3"])
    options: dict[str, Any] = Field(default_factory=dict, examples=[{"num_classes": 10}])


class DatasetRef(_Strict):
    """Exactly one of ``name`` (a built-in dataset) or ``id`` (an uploaded one)."""

    name: Literal["digits", "synthetic"] | None = None
    id: UUID | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.name is None) == (self.id is None):
            raise ValueError("give exactly one of 'name' (digits, synthetic) or 'id'")
        return self


class TrainingSpec(_Strict):
    preset: Literal["tiny", "small", "default"] = "tiny"
    epochs_scale: float = Field(default=1.0, gt=0)
    sampler: Literal["uniform", "complexity-aware"] = "complexity-aware"
    sampler_policy: str | None = None
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    lr: float | None = Field(default=None, gt=0, le=10)

    @field_validator("sampler_policy")
    @classmethod
    def _known_policy(cls, v: str | None) -> str | None:
        if v is not None and v not in SAMPLER_POLICIES:
            raise ValueError(f"unknown sampler_policy {v!r}; allowed: {list(SAMPLER_POLICIES)}")
        return v


class ObjectiveSpec(_Strict):
    """``bound`` is a constraint: a floor for a maximised objective, a ceiling otherwise.
    ``direction`` defaults to the only one that makes sense for the objective."""

    name: Literal["accuracy", "latency_ms", "flops", "params"]
    direction: Literal["min", "max"] | None = None
    bound: float | None = None

    @field_validator("direction")
    @classmethod
    def _direction(cls, v: str | None, info: ValidationInfo) -> str | None:
        name = info.data.get("name")
        expected = OBJECTIVE_DIRECTIONS.get(name) if isinstance(name, str) else None
        if v is not None and expected is not None and v != expected:
            verb = "maximised" if expected == "max" else "minimised"
            raise ValueError(f"{name} can only be {verb} (direction '{expected}'), got '{v}'")
        return v

    @field_validator("bound")
    @classmethod
    def _bound(cls, b: float | None, info: ValidationInfo) -> float | None:
        if b is None:
            return b
        name = info.data.get("name")
        if not math.isfinite(b):
            raise ValueError("bound must be a finite number")
        if name == "accuracy" and not 0.0 < b <= 1.0:
            raise ValueError(f"accuracy bound is a fraction in (0, 1], got {b:g}")
        if name in ("latency_ms", "flops", "params") and b <= 0:
            raise ValueError(f"{name} bound must be positive, got {b:g}")
        return b

    @model_validator(mode="after")
    def _default_direction(self) -> Self:
        if self.direction is None:
            self.direction = OBJECTIVE_DIRECTIONS[self.name]  # type: ignore[assignment]
        return self


class SearchSpec(_Strict):
    algorithm: Literal["random", "evolution", "bayesian", "linas"] = "evolution"
    budget: int = Field(default=100, ge=1)
    population: int | None = Field(default=None, ge=2)
    objectives: list[ObjectiveSpec] = Field(
        default_factory=lambda: [ObjectiveSpec(name="accuracy"), ObjectiveSpec(name="flops")],
        min_length=1,
        max_length=len(OBJECTIVES),
    )
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("objectives")
    @classmethod
    def _unique(cls, v: list[ObjectiveSpec]) -> list[ObjectiveSpec]:
        seen: set[str] = set()
        for o in v:
            if o.name in seen:
                raise ValueError(f"objective '{o.name}' is listed twice")
            seen.add(o.name)
        return v


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
