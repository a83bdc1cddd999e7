"""Where a running job writes what it produces: the ``JobSink`` protocol and an in-memory sink.

The pipeline never talks to the store directly. The runner gives it a sink backed by the
database; tests and command-line runs use :class:`MemorySink`. Every write is idempotent
(candidates are keyed by device and genotype, artifacts by candidate and kind), so a resumed
job can repeat the last batch it was writing without creating duplicates.

What the pipeline hands a sink is typed (``workers.pipeline.records``): a sink is where those
records are encoded for the store, once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from workers.pipeline.records import EpochReport, Progress


class JobCancelled(Exception):
    """The job's cancel flag was seen; the pipeline stops between steps."""


@dataclass(frozen=True)
class CandidateRecord:
    """One evaluated architecture for one target device."""

    device: str
    genotype: str  # canonical genes joined by ','
    arch: dict[str, int]
    arch_short: str
    metrics: dict[str, float]  # accuracy, loss, latency_ms, flops, params (those known)
    feasible: bool
    source: str = "predicted"  # or "measured"
    predicted: dict[str, float] = field(default_factory=dict)  # values before re-measurement
    id: int | None = None  # assigned by the sink


@dataclass(frozen=True)
class ArtifactRecord:
    candidate_id: int | None
    genotype: str
    kind: str  # subnet_weights | subnet_torchscript | subnet_onnx | checkpoint
    uri: str
    sha256: str
    size_bytes: int


class JobSink(Protocol):
    def report_stage(self, progress: Progress) -> None:
        """The job's stage (``progress.stage``) and where it is inside it; also the heartbeat
        of the job's claim."""
        ...

    def add_epoch(self, report: EpochReport) -> None:
        """Append a training log row; a (phase, epoch) already logged is skipped."""
        ...

    def add_event(self, kind: str, message: str, data: Mapping[str, Any]) -> None: ...

    def add_candidates(self, rows: Sequence[CandidateRecord]) -> list[CandidateRecord]:
        """Insert or update by (device, genotype); returns the rows with their ids."""
        ...

    def stored_candidates(self, device: str | None = None) -> list[CandidateRecord]: ...

    def set_pareto(
        self, device: str, genotypes: Sequence[str], hypervolume: float | None
    ) -> None: ...

    def add_artifact(self, artifact: ArtifactRecord) -> None: ...

    def has_artifact(self, candidate_id: int | None, genotype: str, kind: str) -> bool: ...

    def set_checkpoint(self, run_dir: str, checkpoint_uri: str | None) -> None: ...

    def should_cancel(self) -> bool: ...


@dataclass
class MemorySink:
    """A complete in-process sink (thread safe), for tests and local runs."""

    cancel: threading.Event = field(default_factory=threading.Event)
    stages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    candidates: dict[tuple[str, str], CandidateRecord] = field(default_factory=dict)
    pareto: dict[str, list[str]] = field(default_factory=dict)
    hypervolumes: dict[str, list[float | None]] = field(default_factory=dict)
    artifacts: dict[tuple[str, str], ArtifactRecord] = field(default_factory=dict)
    run_dir: str | None = None
    checkpoint_uri: str | None = None
    inserts: int = 0  # how many rows were new (not updates), to check idempotency

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._next_id = 1

    def report_stage(self, progress: Progress) -> None:
        with self._lock:
            self.stages.append((progress.stage, progress.to_json()))

    def add_epoch(self, report: EpochReport) -> None:
        with self._lock:
            seen = {(m["phase"], m["epoch"]) for m in self.metrics}
            if (report.phase, report.epoch) not in seen:
                self.metrics.append(report.metric_row())

    def add_event(self, kind: str, message: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            self.events.append((kind, message, dict(data)))

    def add_candidates(self, rows: Sequence[CandidateRecord]) -> list[CandidateRecord]:
        out = []
        with self._lock:
            for r in rows:
                key = (r.device, r.genotype)
                old = self.candidates.get(key)
                if old is None:
                    self.inserts += 1
                    stored = replace(r, id=self._next_id)
                    self._next_id += 1
                else:
                    stored = replace(r, id=old.id)
                self.candidates[key] = stored
                out.append(stored)
        return out

    def stored_candidates(self, device: str | None = None) -> list[CandidateRecord]:
        with self._lock:
            rows = sorted(self.candidates.values(), key=lambda c: c.id or 0)
        return [c for c in rows if device is None or c.device == device]

    def set_pareto(self, device: str, genotypes: Sequence[str], hypervolume: float | None) -> None:
        with self._lock:
            self.pareto[device] = list(genotypes)
            self.hypervolumes.setdefault(device, []).append(hypervolume)

    def add_artifact(self, artifact: ArtifactRecord) -> None:
        with self._lock:
            self.artifacts[(artifact.genotype, artifact.kind)] = artifact

    def has_artifact(self, candidate_id: int | None, genotype: str, kind: str) -> bool:
        with self._lock:
            return (genotype, kind) in self.artifacts

    def set_checkpoint(self, run_dir: str, checkpoint_uri: str | None) -> None:
        self.run_dir = run_dir
        self.checkpoint_uri = checkpoint_uri

    def should_cancel(self) -> bool:
        return self.cancel.is_set()
