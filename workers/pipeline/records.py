"""Typed records that cross process boundaries: what a job asks a worker to train, what the
trainer reports per epoch, what an export produced, and the progress a stage reports.

They travel between processes as Python objects (pickled by Ray and Tune, never as JSON
strings) and are encoded to JSON once, by the sink, where they enter the store
(``EpochReport.metric_row``, ``Progress.to_json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from workers.pipeline.job import DataRef


def jsonable(v: Any) -> Any:
    """``v`` as JSON values: mappings and sequences element-wise, numbers that are not Python
    numbers (numpy, torch scalars) as floats, anything else as its string."""
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


@dataclass(frozen=True)
class TrainResources:
    """Where and how a job's supernet trains (the job spec's ``resources``): data-parallel
    workers, each with its CPUs and GPUs (a GPU worker trains on CUDA, NCCL between workers;
    CPU workers use gloo), the precision (``bf16``: autocast on CUDA) and whether batch norm
    normalises with the global batch's statistics (``sync_bn``) or each worker's own."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    precision: str = "fp32"
    sync_bn: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TrainResources:
        d = dict(data or {})
        return cls(
            workers=int(d.get("workers", 1)),
            cpus_per_worker=float(d.get("cpus_per_worker", 1.0)),
            gpus_per_worker=float(d.get("gpus_per_worker", 0.0)),
            precision=str(d.get("precision", "fp32")),
            sync_bn=bool(d.get("sync_bn", False)),
        )


@dataclass(frozen=True)
class TrainRequest:
    space_spec: dict[str, Any]
    data: DataRef
    training: dict[str, Any]  # the job's TrainingSpec as JSON
    run_dir: Path
    seed: int
    resources: TrainResources = field(default_factory=TrainResources)
    # Mid-epoch checkpoints (None: only at epoch ends), by steps or seconds, whichever first.
    checkpoint_every_steps: int | None = None
    checkpoint_every_s: float | None = None


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sha256: str
    size_bytes: int


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


# The trainer's keys that are fields of a report; the rest of its epoch dict is ``metrics``.
_POSITION = ("phase_index", "epochs", "global_epoch", "total_epochs")
_FIELDS = ("phase", "epoch", "step", *_POSITION)


@dataclass(frozen=True)
class EpochReport:
    """One trained epoch: where it sits in the schedule and what the trainer measured."""

    phase: str
    epoch: int
    metrics: dict[str, Any]  # JSON values: losses, accuracy per named subnet, lr, throughput, ...
    phase_index: int | None = None
    epochs: int | None = None  # epochs of this phase
    global_epoch: int | None = None
    total_epochs: int | None = None
    step: int | None = None
    # The first report after a resume: the checkpoint this attempt started from.
    resumed_from: str | None = None
    # The process that trained the epoch (set by the Ray trial: after a retry it changes).
    worker_pid: int | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any], *, resumed_from: str | None = None) -> EpochReport:
        """The report of the trainer's ``on_epoch`` dict (its ``checkpoint`` path is local to
        the trainer's process and left out)."""
        rest = {k: v for k, v in info.items() if k not in _FIELDS and k != "checkpoint"}
        return cls(
            phase=str(info.get("phase", "")),
            epoch=int(info.get("epoch", 0)),
            metrics=jsonable(rest),
            phase_index=_opt_int(info.get("phase_index")),
            epochs=_opt_int(info.get("epochs")),
            global_epoch=_opt_int(info.get("global_epoch")),
            total_epochs=_opt_int(info.get("total_epochs")),
            step=_opt_int(info.get("step")),
            resumed_from=resumed_from,
        )

    def metric_row(self) -> dict[str, Any]:
        """The ``train_metrics`` row: phase, epoch, step and, as JSON, every other number the
        report carries (the schedule position too: the dashboard reads them from there)."""
        numbers: dict[str, Any] = {k: getattr(self, k) for k in _POSITION}
        numbers = {k: v for k, v in numbers.items() if v is not None}
        numbers.update(self.metrics)
        if self.resumed_from is not None:
            numbers["resumed_from"] = self.resumed_from
        if self.worker_pid is not None:
            numbers["worker_pid"] = self.worker_pid
        return {
            "phase": self.phase,
            "epoch": self.epoch,
            "step": self.step or 0,
            "metrics": numbers,
        }


@dataclass(frozen=True)
class Progress:
    """Where a running job is inside its stage: the job row's ``progress`` (set fields only).
    Each stage has its own subclass, which names the stage."""

    stage: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = jsonable(v)
        return out


@dataclass(frozen=True)
class TrainingProgress(Progress):
    stage: ClassVar[str] = "training"
    phase: str | None = None
    phase_index: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    global_epoch: int | None = None
    total_epochs: int | None = None
    step: int | None = None
    # Step-level progress (between epoch reports): steps of this epoch, position in the whole
    # schedule, global images per second, estimated seconds left, data-parallel workers.
    steps: int | None = None
    position: int | None = None
    total_steps: int | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    workers: int | None = None
    skipped: bool | None = None  # the job reuses another job's supernet ...
    reused: str | None = None  # ... this checkpoint

    @classmethod
    def of(cls, report: EpochReport) -> TrainingProgress:
        return cls(
            phase=report.phase,
            phase_index=report.phase_index,
            epoch=report.epoch,
            epochs=report.epochs,
            global_epoch=report.global_epoch,
            total_epochs=report.total_epochs,
            step=report.step,
        )

    @classmethod
    def of_step(cls, info: Mapping[str, Any]) -> TrainingProgress:
        """The progress of the trainer's ``on_step`` dict."""
        total_epochs = info.get("total_epochs")
        return cls(
            phase=str(info.get("phase", "")),
            phase_index=_opt_int(info.get("phase_index")),
            epoch=_opt_int(info.get("epoch")),
            epochs=_opt_int(info.get("epochs")),
            total_epochs=_opt_int(total_epochs),
            step=_opt_int(info.get("step")),
            steps=_opt_int(info.get("steps")),
            position=_opt_int(info.get("position")),
            total_steps=_opt_int(info.get("total_steps")),
            images_per_s=_opt_float(info.get("images_per_s")),
            eta_s=_opt_float(info.get("eta_s")),
            workers=_opt_int(info.get("world_size")),
        )


def _opt_float(v: Any) -> float | None:
    return None if v is None else round(float(v), 3)


@dataclass(frozen=True)
class PredictingProgress(Progress):
    stage: ClassVar[str] = "predicting"
    device: str | None = None
    done: int | None = None
    latency_tables: int | None = None
    of: int | None = None


@dataclass(frozen=True)
class SearchingProgress(Progress):
    stage: ClassVar[str] = "searching"
    device: str
    evaluated: int
    budget: int
    pareto: int | None = None
    hypervolume: float | None = None


@dataclass(frozen=True)
class MeasuringProgress(Progress):
    stage: ClassVar[str] = "measuring"
    device: str
    front: int
    todo: int


@dataclass(frozen=True)
class ExportingProgress(Progress):
    stage: ClassVar[str] = "exporting"
    done: int
    of: int
