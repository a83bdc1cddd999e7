"""The Ray engine: training as a Ray Tune trial, evaluation / latency / export as Ray tasks.

Every task calls ``workers.pipeline.tools``, whose per-process caches keep the loaded supernet
and data in a Ray worker between tasks. Latency for a device that names a Ray resource runs
only on nodes that carry that resource. The Tune trial resumes from the checkpoints in the
job's run directory, so a retried trial (``FailureConfig``) continues rather than restarts;
it reports every epoch through Tune, and stops within seconds of a cancel via a flag file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
from ray import tune

from workers.pipeline import tools
from workers.pipeline.engine import EpochFn, ExportItem, ExportResult, StopFn, TrainRequest
from workers.pipeline.job import DataRef, DeviceInfo

STOP_FLAG = "STOP"
# How much of a device's custom resource one latency task takes: small, so that several
# measurements can queue on the node, while only nodes that carry the resource qualify.
DEVICE_RESOURCE_SHARE = 0.01


class TrainingFailed(RuntimeError):
    pass


@ray.remote(num_cpus=1, max_retries=2)
def _evaluate_task(
    checkpoint: str, data: DataRef, archs: list[dict[str, int]], seed: int
) -> list[dict[str, float]]:
    return tools.evaluate(checkpoint, data, archs, seed)


# Latency tasks get a fresh worker process each (max_calls=1): tracing a network for the
# torchscript runtime leaves about the network's size behind in the process (TorchScript keeps
# it; neither gc nor clearing its class registry frees it), so a reused worker would grow with
# every front it measures.
@ray.remote(num_cpus=1, max_retries=1, max_calls=1)
def _latency_table_task(device: DeviceInfo, space_spec: dict[str, Any], cache_dir: str) -> str:
    return str(tools.latency_table(device, space_spec, Path(cache_dir)))


@ray.remote(num_cpus=1, max_retries=1, max_calls=1)
def _measure_task(
    device: DeviceInfo, checkpoint: str, archs: list[dict[str, int]], cache_dir: str
) -> list[float]:
    return tools.measure_latency(device, checkpoint, archs, cache_dir)


@ray.remote(num_cpus=1, max_retries=1)
def _export_task(
    checkpoint: str, data: DataRef, arch: dict[str, int], fmt: str, dest: str, seed: int
) -> tuple[str, str, int]:
    path, sha, size = tools.export(checkpoint, data, arch, fmt, Path(dest), seed)
    return str(path), sha, size


def device_options(device: DeviceInfo) -> dict[str, Any]:
    """Ray task options that pin a latency task to nodes carrying the device's resource."""
    if device.ray_resource:
        return {"resources": {device.ray_resource: DEVICE_RESOURCE_SHARE}}
    return {}


def train_trainable(config: dict[str, Any]) -> None:
    """Tune function trainable: runs (or resumes) the supernet training of one job."""
    req: TrainRequest = config["request"]
    stop_file = req.run_dir / STOP_FLAG

    def on_epoch(info: dict[str, Any]) -> None:
        # Which process trained the epoch: after a retry the log shows the new trial's.
        row = {**tools.jsonable(info), "worker_pid": os.getpid()}
        tune.report({"epoch_info": json.dumps(row), "done": False})

    def should_stop() -> bool:
        return stop_file.exists()

    try:
        path = tools.train(
            req.space_spec,
            req.data,
            req.training,
            req.run_dir,
            req.seed,
            on_epoch=on_epoch,
            should_stop=should_stop,
        )
    except Exception as exc:
        if should_stop() and type(exc).__name__ == "TrainingCancelled":
            tune.report({"epoch_info": "", "done": True, "cancelled": True})
            return
        raise
    tune.report({"epoch_info": "", "done": True, "final": str(path)})


def _ignore_epoch(info: dict[str, Any]) -> None:
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
        raw = result.get("epoch_info")
        if raw:
            self.on_epoch(json.loads(raw))


class RayEngine:
    """Runs a job's work on the Ray cluster this process is connected to."""

    def __init__(self, *, max_failures: int = 2, eval_chunk: int = 8, parallel: int | None = None):
        self.max_failures = max_failures
        self.eval_chunk = eval_chunk
        self.parallel = parallel

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
            from workers.pipeline.sink import JobCancelled

            raise JobCancelled("training stopped on request")
        if result.error is not None:
            raise TrainingFailed(f"training failed after retries: {result.error}")
        final = req.run_dir / "final.pt"
        if not final.is_file():
            raise TrainingFailed(f"training ended without writing {final}")
        return final

    def _chunks(self, archs: Sequence[Mapping[str, int]]) -> list[list[dict[str, int]]]:
        parallel = self.parallel or max(1, int(ray.available_resources().get("CPU", 1)))
        size = max(1, min(self.eval_chunk, -(-len(archs) // parallel)))
        items = [dict(a) for a in archs]
        return [items[i : i + size] for i in range(0, len(items), size)]

    def evaluate(
        self, checkpoint: Path, data: DataRef, archs: Sequence[Mapping[str, int]], seed: int
    ) -> list[dict[str, float]]:
        refs = [
            _evaluate_task.remote(str(checkpoint), data, chunk, seed)
            for chunk in self._chunks(archs)
        ]
        return [r for part in ray.get(refs) for r in part]

    def latency_table(
        self, device: DeviceInfo, space_spec: dict[str, Any], cache_dir: Path
    ) -> Path:
        task = _latency_table_task.options(**device_options(device))
        return Path(ray.get(task.remote(device, space_spec, str(cache_dir))))

    def measure_latency(
        self,
        device: DeviceInfo,
        checkpoint: Path,
        archs: Sequence[Mapping[str, int]],
        cache_dir: Path,
    ) -> list[float]:
        # One task for the whole front: measurements on one device must not compete.
        task = _measure_task.options(**device_options(device))
        ref = task.remote(device, str(checkpoint), [dict(a) for a in archs], str(cache_dir))
        times: list[float] = ray.get(ref)
        return times

    def export(
        self,
        checkpoint: Path,
        data: DataRef,
        arch: Mapping[str, int],
        fmt: str,
        dest: Path,
        seed: int,
    ) -> ExportResult:
        ref = _export_task.remote(str(checkpoint), data, dict(arch), fmt, str(dest), seed)
        path, sha, size = ray.get(ref)
        return ExportResult(Path(path), sha, size)

    def export_many(
        self, checkpoint: Path, data: DataRef, items: Sequence[ExportItem], seed: int
    ) -> list[ExportResult]:
        refs = [
            _export_task.remote(str(checkpoint), data, dict(i.arch), i.fmt, str(i.dest), seed)
            for i in items
        ]
        return [ExportResult(Path(p), sha, size) for p, sha, size in ray.get(refs)]
