"""What the pipeline needs to run one job, resolved from the stored job by the runner."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_service.domain import JobSpec


@dataclass(frozen=True)
class DeviceInfo:
    """A latency target. ``ray_resource`` names the custom Ray resource of the nodes that are
    (or drive) this device; latency for it is measured only there."""

    name: str
    torch_device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    ray_resource: str | None = None
    warmup: int = 10
    repeats: int = 50
    clock: str = "wall"
    runtime: str = "eager"
    paired: bool = False


@dataclass(frozen=True)
class DataRef:
    """Enough to load the same dataset splits in any process: ``load_dataset(name, seed=...,
    **options)``."""

    name: str
    seed: int
    options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        raw = json.dumps([self.name, self.seed, self.options], sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class JobInputs:
    job_id: str
    spec: JobSpec
    data: DataRef
    run_dir: Path  # this job's working directory (training checkpoints, exports)
    devices: tuple[DeviceInfo, ...]
    cache_dir: Path  # shared between jobs: latency tables per device and space
    supernet_checkpoint: Path | None = None  # set when the job reuses another job's supernet

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def gpus(self) -> float:
        """The GPU share each evaluation and export call asks for: one of the job's training
        workers' GPUs (at most one: a call computes on one device), 0 for a CPU job."""
        return min(1.0, float(self.spec.resources.gpus_per_worker))

    @property
    def train_dir(self) -> Path:
        return self.run_dir / "train"

    @property
    def export_dir(self) -> Path:
        return self.run_dir / "exports"

    def checkpoint(self) -> Path:
        """The trained supernet this job searches: its own, or the reused one."""
        if self.supernet_checkpoint is not None:
            return self.supernet_checkpoint
        return self.train_dir / "final.pt"
