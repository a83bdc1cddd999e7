"""Where the heavy work of a job runs: an ``Engine`` trains, and runs units of work.

A unit of work is a plain module-level function (``workers.pipeline.work``) marked with
:func:`unit`, which says how it is placed on a cluster: CPUs, retries, whether it needs a
fresh process, and whether it computes on a GPU when it is given one. A stage runs it through
its engine, the same way wherever it runs:

- ``engine.call(fn, *args, resources=..., gpus=...)``: one call, its result;
- ``engine.map(fn, calls, resources=..., gpus=...)``: ``fn(*args)`` for each argument tuple,
  in parallel where the engine can, results in order;
- ``engine.chunks(items, gpus=...)``: ``items`` split for ``map`` at the engine's parallelism.

``resources`` are custom node resources a call needs (a latency target's Ray resource), so it
runs only on nodes that carry them. ``gpus`` is the GPU share each call of a GPU unit asks for
(a job's evaluation and export follow its training onto GPUs: ``JobInputs.gpus``); on Ray a
task sees only the GPUs it was given, so a unit that asks for none computes on the CPU.

Training is its own verb: one long, resumable run that reports every epoch (and step-level
progress) and honours a stop request (on Ray, a data-parallel Ray Train run with retries).

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
    gpu: bool = False  # computes on a GPU when a call is given one (``gpus=`` of call/map)


DEFAULT_PLACEMENT = Placement()
_PLACEMENT = "__placement__"


def unit(
    *, cpus: float = 1.0, retries: int = 1, fresh_process: bool = False, gpu: bool = False
) -> Callable[[F], F]:
    """Mark ``fn`` as a unit of work with its placement; ``fn`` itself is unchanged (still a
    plain function a test can call)."""

    def mark(fn: F) -> F:
        setattr(fn, _PLACEMENT, Placement(cpus, retries, fresh_process, gpu))
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

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        resources: Resources | None = None,
        gpus: float = 0.0,
    ) -> T:
        """``fn(*args)``, run where the engine runs work (with ``gpus`` GPUs: a GPU unit)."""
        ...

    def map(
        self,
        fn: Callable[..., T],
        calls: Iterable[Sequence[Any]],
        *,
        resources: Resources | None = None,
        gpus: float = 0.0,
    ) -> list[T]:
        """``fn(*args)`` for every argument tuple of ``calls``, results in their order."""
        ...

    def chunks(self, items: Sequence[X], *, gpus: float = 0.0) -> list[list[X]]:
        """``items`` in consecutive chunks, as many as the engine runs at once with ``gpus``
        GPUs per call (no empty chunk; none at all for no items)."""
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

    # ``resources`` and ``gpus`` place work on a cluster; here it runs in this process, on the
    # devices this process sees (``workers.devices.resolve_device``).
    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        resources: Resources | None = None,
        gpus: float = 0.0,
    ) -> T:
        return fn(*args)

    def map(
        self,
        fn: Callable[..., T],
        calls: Iterable[Sequence[Any]],
        *,
        resources: Resources | None = None,
        gpus: float = 0.0,
    ) -> list[T]:
        return [fn(*args) for args in calls]

    def chunks(self, items: Sequence[X], *, gpus: float = 0.0) -> list[list[X]]:
        # One chunk: in one process a single call shares its caches across all items.
        return [list(items)] if items else []
