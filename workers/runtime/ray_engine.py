"""The Ray engine: training as a Ray Tune trial, every other unit of work as a Ray task.

A unit (``workers.pipeline.engine.unit``) becomes ``ray.remote(fn)`` with its placement as
task options: CPUs, retries, ``max_calls=1`` for a unit that needs a fresh process (Ray takes
``max_calls`` only when the remote function is made, so there is one remote function per unit
and process kind), and the custom resources a call needs, so latency for a device that names
a Ray resource runs only on nodes that carry that resource. The units' per-process caches
(``workers.pipeline.work.cache``) keep the loaded supernet and data in a Ray worker between
tasks.

The Tune trial resumes from the checkpoints in the job's run directory, so a retried trial
(``FailureConfig``) continues rather than restarts; it reports every epoch through Tune, and
stops within seconds of a cancel via a flag file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import ray
from ray import tune
from ray.exceptions import RayTaskError

from workers.pipeline.engine import EpochFn, Resources, StopFn, placement_of
from workers.pipeline.job import DeviceInfo
from workers.pipeline.records import EpochReport, TrainRequest
from workers.pipeline.sink import JobCancelled
from workers.pipeline.work.latency import device_resources
from workers.runtime.errors import caused_by, task_cause

T = TypeVar("T")
X = TypeVar("X")

STOP_FLAG = "STOP"


class TrainingFailed(RuntimeError):
    pass


def device_options(device: DeviceInfo) -> dict[str, Any]:
    """Ray task options that pin a task to nodes carrying the device's resource."""
    resources = device_resources(device)
    return {"resources": resources} if resources else {}


def train_trainable(config: dict[str, Any]) -> None:
    """Tune function trainable: runs (or resumes) the supernet training of one job."""
    from workers.pipeline.work.training import train
    from workers.training import TrainingCancelled

    req: TrainRequest = config["request"]
    stop_file = req.run_dir / STOP_FLAG

    def on_epoch(report: EpochReport) -> None:
        # Which process trained the epoch: after a retry the log shows the new trial's. The
        # report travels to the driver as it is (Tune pickles results).
        tune.report({"epoch_report": replace(report, worker_pid=os.getpid()), "done": False})

    def should_stop() -> bool:
        return stop_file.exists()

    try:
        path = train(req, on_epoch=on_epoch, should_stop=should_stop)
    except Exception as exc:
        if should_stop() and caused_by(exc, TrainingCancelled):
            tune.report({"epoch_report": None, "done": True, "cancelled": True})
            return
        raise
    tune.report({"epoch_report": None, "done": True, "final": str(path)})


def _ignore_epoch(report: EpochReport) -> None:
    return None


def _never() -> bool:
    return False


class _Forwarder(tune.Callback):
    """Runs in the job's process (the Tune driver): forwards epoch reports and turns the job's
    cancel flag into the trial's stop file."""

    def __init__(self, on_epoch: EpochFn, should_stop: StopFn, stop_file: Path):
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.stop_file = stop_file
        self.cancelled = False
        self._last = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config into the experiment folder; the live hooks (closures
        # over the job's store connection) stay in this process and are not part of it.
        return {"stop_file": self.stop_file, "cancelled": self.cancelled, "_last": 0.0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.on_epoch = _ignore_epoch
        self.should_stop = _never

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if self.cancelled or now - self._last < 0.5:
            return
        self._last = now
        if self.should_stop():
            self.cancelled = True
            self.stop_file.touch()

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        report = result.get("epoch_report")
        if isinstance(report, EpochReport):
            self.on_epoch(report)


def _get(refs: Any) -> Any:
    """``ray.get`` that lets a task's cancellation through as the pipeline's own type."""
    try:
        return ray.get(refs)
    except RayTaskError as exc:
        cause = task_cause(exc)
        if isinstance(cause, JobCancelled):
            raise cause from exc
        raise


class RayEngine:
    """Runs a job's work on the Ray cluster this process is connected to."""

    def __init__(self, *, max_failures: int = 2, eval_chunk: int = 8, parallel: int | None = None):
        self.max_failures = max_failures
        self.eval_chunk = eval_chunk
        self.parallel = parallel
        self._remotes: dict[Callable[..., Any], Any] = {}

    def train(self, req: TrainRequest, on_epoch: EpochFn, should_stop: StopFn) -> Path:
        # No console tables from Tune (with verbose=0): the job's store has the numbers.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        req.run_dir.mkdir(parents=True, exist_ok=True)
        stop_file = req.run_dir / STOP_FLAG
        stop_file.unlink(missing_ok=True)
        forwarder = _Forwarder(on_epoch, should_stop, stop_file)
        tuner = tune.Tuner(
            tune.with_resources(train_trainable, {"cpu": 1}),
            param_space={"request": req},
            run_config=tune.RunConfig(
                name=f"train-{time.time_ns()}",
                storage_path=str((req.run_dir / "tune").resolve()),
                failure_config=tune.FailureConfig(max_failures=self.max_failures),
                callbacks=[forwarder],
                verbose=0,
            ),
        )
        results = tuner.fit()
        result = results[0]
        if forwarder.cancelled or stop_file.exists():
            stop_file.unlink(missing_ok=True)
            raise JobCancelled("training stopped on request")
        if result.error is not None:
            raise TrainingFailed(f"training failed after retries: {result.error}")
        final = req.run_dir / "final.pt"
        if not final.is_file():
            raise TrainingFailed(f"training ended without writing {final}")
        return final

    # ----- units of work ------------------------------------------------------------------------
    def _remote(self, fn: Callable[..., Any], fresh_process: bool) -> Any:
        # One remote function per unit, made once: Ray exports a remote function's code to the
        # cluster on its first call.
        if fn not in self._remotes:
            self._remotes[fn] = ray.remote(max_calls=1)(fn) if fresh_process else ray.remote(fn)
        return self._remotes[fn]

    def submit(
        self, fn: Callable[..., Any], *args: Any, resources: Resources | None = None
    ) -> ray.ObjectRef[Any]:
        """Start ``fn(*args)`` as a Ray task with its placement; its result's reference."""
        placement = placement_of(fn)
        options: dict[str, Any] = {"num_cpus": placement.cpus, "max_retries": placement.retries}
        if resources:
            options["resources"] = dict(resources)
        ref: ray.ObjectRef[Any] = (
            self._remote(fn, placement.fresh_process).options(**options).remote(*args)
        )
        return ref

    def call(self, fn: Callable[..., T], *args: Any, resources: Resources | None = None) -> T:
        result: T = _get(self.submit(fn, *args, resources=resources))
        return result

    def map(
        self,
        fn: Callable[..., T],
        calls: Iterable[Sequence[Any]],
        *,
        resources: Resources | None = None,
    ) -> list[T]:
        refs = [self.submit(fn, *args, resources=resources) for args in calls]
        results: list[T] = _get(refs) if refs else []
        return results

    def chunks(self, items: Sequence[X]) -> list[list[X]]:
        # As many chunks as the cluster has free CPUs, at most ``eval_chunk`` items each: a
        # small batch spreads over every worker, a large one keeps tasks short.
        parallel = self.parallel or max(1, int(ray.available_resources().get("CPU", 1)))
        size = max(1, min(self.eval_chunk, -(-len(items) // parallel)))
        listed = list(items)
        return [listed[i : i + size] for i in range(0, len(listed), size)]
