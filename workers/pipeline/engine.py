"""Where the heavy work of a job runs: an ``Engine`` trains, and runs units of work.

A unit of work is a plain module-level function (``workers.pipeline.work``) marked with
:func:`unit`, which says how it is placed on a cluster: CPUs, retries, and whether it needs a
fresh process. A stage runs it through its engine, the same way wherever it runs:

- ``engine.call(fn, *args, resources=...)``: one call, its result;
- ``engine.map(fn, calls, resources=...)``: ``fn(*args)`` for each argument tuple, in parallel
  where the engine can, results in order;
- ``engine.chunks(items)``: ``items`` split for ``map`` at the engine's parallelism.

``resources`` are custom node resources a call needs (a latency target's Ray resource), so it
runs only on nodes that carry them. Training is its own verb: one long, resumable run that
reports every epoch (and step-level progress) and honours a stop request (on Ray, a
data-parallel Ray Train run with retries).

:class:`LocalEngine` runs everything in the calling process (tests, command-line runs). The Ray
engine (``workers.runtime.ray_engine.RayEngine``) wraps each unit in ``ray.remote``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from workers.pipeline.records import EpochReport, TrainingProgress, TrainRequest

T = TypeVar("T")
X = TypeVar("X")
F = TypeVar("F", bound=Callable[..., Any])

EpochFn = Callable[[EpochReport], None]
StopFn = Callable[[], bool]
ProgressFn = Callable[[TrainingProgress], None]
Resources = Mapping[str, float]


@dataclass(frozen=True)
class Placement:
    """How a unit of work is placed on a cluster; an in-process engine ignores it."""

    cpus: float = 1.0
    retries: int = 1  # re-runs after its worker process died
    fresh_process: bool = False  # a new worker process for every call (none is reused)


DEFAULT_PLACEMENT = Placement()
_PLACEMENT = "__placement__"


def unit(*, cpus: float = 1.0, retries: int = 1, fresh_process: bool = False) -> Callable[[F], F]:
    """Mark ``fn`` as a unit of work with its placement; ``fn`` itself is unchanged (still a
    plain function a test can call)."""

    def mark(fn: F) -> F:
        setattr(fn, _PLACEMENT, Placement(cpus, retries, fresh_process))
        return fn

    return mark


def placement_of(fn: Callable[..., Any]) -> Placement:
    placement: Placement = getattr(fn, _PLACEMENT, DEFAULT_PLACEMENT)
    return placement


class Engine(Protocol):
    def train(
        self,
        req: TrainRequest,
        on_epoch: EpochFn,
        should_stop: StopFn,
        on_progress: ProgressFn | None = None,
    ) -> Path:
        """Train (resuming from ``req.run_dir`` checkpoints); returns the final checkpoint.
        ``on_progress`` gets step-level progress (images/s, ETA) every few seconds."""
        ...

    def call(self, fn: Callable[..., T], *args: Any, resources: Resources | None = None) -> T:
        """``fn(*args)``, run where the engine runs work."""
        ...

    def map(
        self,
        fn: Callable[..., T],
        calls: Iterable[Sequence[Any]],
        *,
        resources: Resources | None = None,
    ) -> list[T]:
        """``fn(*args)`` for every argument tuple of ``calls``, results in their order."""
        ...

    def chunks(self, items: Sequence[X]) -> list[list[X]]:
        """``items`` in consecutive chunks, as many as the engine runs at once (no empty
        chunk; none at all for no items)."""
        ...


class LocalEngine:
    """Runs every piece of work in this process, one after the other."""

    def train(
        self,
        req: TrainRequest,
        on_epoch: EpochFn,
        should_stop: StopFn,
        on_progress: ProgressFn | None = None,
    ) -> Path:
        from workers.pipeline.work.training import train

        return train(req, on_epoch=on_epoch, should_stop=should_stop, on_progress=on_progress)

    def call(self, fn: Callable[..., T], *args: Any, resources: Resources | None = None) -> T:
        return fn(*args)

    def map(
        self,
        fn: Callable[..., T],
        calls: Iterable[Sequence[Any]],
        *,
        resources: Resources | None = None,
    ) -> list[T]:
        return [fn(*args) for args in calls]

    def chunks(self, items: Sequence[X]) -> list[list[X]]:
        # One chunk: in one process a single call shares its caches across all items.
        return [list(items)] if items else []
