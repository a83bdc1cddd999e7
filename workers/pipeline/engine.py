"""Where the heavy work of a job runs: an ``Engine`` trains, evaluates, times and exports.

:class:`LocalEngine` runs everything in the calling process (tests, command-line runs). The Ray
engine (``workers.ray_tasks.RayEngine``) runs training as a Ray Tune trial and fans evaluation,
latency and export out as Ray tasks. Both call the same functions of ``workers.pipeline.tools``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from workers.pipeline import tools
from workers.pipeline.job import DataRef, DeviceInfo

EpochFn = Callable[[dict[str, Any]], None]
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class TrainRequest:
    space_spec: dict[str, Any]
    data: DataRef
    training: dict[str, Any]  # the job's TrainingSpec as JSON
    run_dir: Path
    seed: int


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class ExportItem:
    arch: dict[str, int]
    fmt: str
    dest: Path


class Engine(Protocol):
    def train(self, req: TrainRequest, on_epoch: EpochFn, should_stop: StopFn) -> Path:
        """Train (resuming from ``req.run_dir`` checkpoints); returns the final checkpoint."""
        ...

    def evaluate(
        self, checkpoint: Path, data: DataRef, archs: Sequence[Mapping[str, int]], seed: int
    ) -> list[dict[str, float]]: ...

    def latency_table(
        self, device: DeviceInfo, space_spec: dict[str, Any], cache_dir: Path
    ) -> Path: ...

    def measure_latency(
        self,
        device: DeviceInfo,
        checkpoint: Path,
        archs: Sequence[Mapping[str, int]],
        cache_dir: Path,
    ) -> list[float]: ...

    def export(
        self,
        checkpoint: Path,
        data: DataRef,
        arch: Mapping[str, int],
        fmt: str,
        dest: Path,
        seed: int,
    ) -> ExportResult: ...

    def export_many(
        self, checkpoint: Path, data: DataRef, items: Sequence[ExportItem], seed: int
    ) -> list[ExportResult]:
        """Several exports (in parallel where the engine can), in the order given."""
        ...


class LocalEngine:
    """Runs every piece of work in this process."""

    def train(self, req: TrainRequest, on_epoch: EpochFn, should_stop: StopFn) -> Path:
        return tools.train(
            req.space_spec,
            req.data,
            req.training,
            req.run_dir,
            req.seed,
            on_epoch=on_epoch,
            should_stop=should_stop,
        )

    def evaluate(
        self, checkpoint: Path, data: DataRef, archs: Sequence[Mapping[str, int]], seed: int
    ) -> list[dict[str, float]]:
        return tools.evaluate(checkpoint, data, archs, seed)

    def latency_table(
        self, device: DeviceInfo, space_spec: dict[str, Any], cache_dir: Path
    ) -> Path:
        return tools.latency_table(device, space_spec, cache_dir)

    def measure_latency(
        self,
        device: DeviceInfo,
        checkpoint: Path,
        archs: Sequence[Mapping[str, int]],
        cache_dir: Path,
    ) -> list[float]:
        return tools.measure_latency(device, checkpoint, archs, cache_dir)

    def export(
        self,
        checkpoint: Path,
        data: DataRef,
        arch: Mapping[str, int],
        fmt: str,
        dest: Path,
        seed: int,
    ) -> ExportResult:
        path, sha, size = tools.export(checkpoint, data, arch, fmt, dest, seed)
        return ExportResult(path, sha, size)

    def export_many(
        self, checkpoint: Path, data: DataRef, items: Sequence[ExportItem], seed: int
    ) -> list[ExportResult]:
        return [self.export(checkpoint, data, i.arch, i.fmt, i.dest, seed) for i in items]
