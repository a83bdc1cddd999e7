"""The Ray engine: training as a data-parallel Ray Train run, every other unit of work as a
Ray task.

A unit (``workers.pipeline.engine.unit``) becomes ``ray.remote(fn)`` with its placement as
task options: CPUs, retries, ``max_calls=1`` for a unit that needs a fresh process (Ray takes
``max_calls`` only when the remote function is made, so there is one remote function per unit
and process kind), the custom resources a call needs, so latency for a device that names
a Ray resource runs only on nodes that carry that resource, and ``num_gpus`` for a GPU unit
called with ``gpus``: Ray then runs it on a node with a free GPU and sets the task's
``CUDA_VISIBLE_DEVICES``, so its ``auto`` device is that GPU (a task given none sees none).
A call given a GPU runs in a fresh worker process, Ray's own rule for GPU tasks: a reused
process would keep its CUDA context and memory, and a later task there, given no GPU or
another one, would compute on it. Such a process loads its supernet and data anew, so GPU
calls take larger chunks (``gpu_eval_chunk``).
The units' per-process caches (``workers.pipeline.work.cache``) keep the loaded supernet and
data in a Ray worker between tasks.

Training is a ``TorchTrainer`` (Ray Train, DDP-style): ``resources.workers`` workers, each with
its CPUs and GPUs (gloo between CPU workers, NCCL between GPU workers; a GPU worker trains on
CUDA). Every rank runs the same trainer (``workers.training``) with its ``Dist``: the same
subnets from the shared seed, its share of the global batch, one gradient all-reduce per
sandwich step. Rank 0 writes each checkpoint (per epoch, and by steps or time mid-epoch) to the
job's run directory and reports it through Ray Train's checkpoint API into the shared store
(``run_dir/ray``); a worker that dies brings the group back (``FailureConfig``) from the last
reported checkpoint, and a later attempt of the job (same run name and storage) resumes from it
too. Rank 0 sends epoch reports and step-level progress to this process through a Ray queue;
a cancel becomes a stop file that every rank sees, and the ranks stop together.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import ray
from ray.exceptions import RayTaskError

from workers.pipeline.engine import EpochFn, ProgressFn, Resources, StopFn, placement_of
from workers.pipeline.job import DeviceInfo
from workers.pipeline.records import EpochReport, TrainingProgress, TrainRequest
from workers.pipeline.sink import JobCancelled
from workers.pipeline.work.latency import device_resources
from workers.runtime.errors import caused_by, task_cause

T = TypeVar("T")
X = TypeVar("X")

STOP_FLAG = "STOP"
RUN_NAME = "supernet"  # one Ray Train run per job: a later attempt finds its checkpoints
STORAGE_DIR = "ray"
# How often Ray Train's controller polls the training workers (an operator's own setting of
# the variable wins). Half a second: an epoch report or the end of a run waits at most that.
HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
TRAIN_HEALTH_CHECK_S = "0.5"


class TrainingFailed(RuntimeError):
    pass


def device_options(device: DeviceInfo) -> dict[str, Any]:
    """Ray task options that pin a task to nodes carrying the device's resource."""
    resources = device_resources(device)
    return {"resources": resources} if resources else {}


def _reported_checkpoint(tmp: Path) -> Path | None:
    """This rank's copy of the checkpoint Ray Train restored (the latest reported), if any."""
    import ray.train

    ck = ray.train.get_checkpoint()
    if ck is None:
        return None
    with ck.as_directory() as d:
        files = sorted(Path(d).glob("*.pt"))
        if not files:
            return None
        local = tmp / files[-1].name
        shutil.copy2(files[-1], local)
    return local


def _newer_than_files(run_dir: Path, reported: Path | None) -> Path | None:
    """The reported checkpoint, unless the run directory holds a later one (rank 0 writes
    its file before reporting it, and a job killed in between restores an older report):
    None then, and the trainer resumes from the run directory's latest."""
    from workers.training.checkpoint import checkpoint_position, list_checkpoints

    if reported is None:
        return None
    files = list_checkpoints(run_dir)
    mine, latest = (
        checkpoint_position(reported),
        (checkpoint_position(files[-1]) if files else None),
    )
    if latest is not None and mine is not None and latest >= mine:
        return None
    return reported


def train_worker(config: dict[str, Any]) -> None:
    """One rank of the job's training (the ``TorchTrainer`` loop function)."""
    import ray.train
    import torch

    from workers.pipeline.work.training import train
    from workers.training import TrainingCancelled
    from workers.training.distributed import Dist

    req: TrainRequest = config["request"]
    queue = config["queue"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(req.resources.cpus_per_worker)))
    device = "cpu"
    if req.resources.gpus_per_worker > 0:
        import ray.train.torch

        device = str(ray.train.torch.get_device())
    stop_file = req.run_dir / STOP_FLAG
    dist = Dist(rank, world)
    # Which process is which rank (operators and tests find a worker to inspect or kill).
    pid_dir = req.run_dir / STORAGE_DIR / "ranks"
    pid_dir.mkdir(parents=True, exist_ok=True)
    (pid_dir / f"rank-{rank}.pid").write_text(str(os.getpid()))
    (pid_dir / f"rank-{rank}.node").write_text(ray.get_runtime_context().get_node_id())

    def on_epoch(report: EpochReport) -> None:
        # Which process trained the epoch: after a retry the log shows the new worker's.
        queue.put(("epoch", replace(report, worker_pid=os.getpid())))

    def on_progress(progress: TrainingProgress) -> None:
        queue.put(("progress", progress))

    def on_checkpoint(path: Path | None, info: dict[str, Any]) -> None:
        # Every rank reports (Ray Train's barrier); rank 0 with the checkpoint file.
        if path is None:
            ray.train.report(dict(info), checkpoint=None)
            return
        with tempfile.TemporaryDirectory() as d:
            shutil.copy2(path, Path(d) / path.name)
            ray.train.report(
                {**info, "checkpoint": path.name},
                checkpoint=ray.train.Checkpoint.from_directory(d),
            )

    with tempfile.TemporaryDirectory() as tmp:
        resume = _newer_than_files(req.run_dir, _reported_checkpoint(Path(tmp)))
        try:
            train(
                req,
                on_epoch=on_epoch,
                on_progress=on_progress,
                should_stop=stop_file.exists,
                dist=dist,
                resume_from=resume,
                on_checkpoint=on_checkpoint,
                device=device,
            )
        except Exception as exc:
            if stop_file.exists() and caused_by(exc, TrainingCancelled):
                if rank == 0:
                    queue.put(("cancelled", None))
                return  # a clean end: Ray Train must not retry a cancelled run
            raise
    if rank == 0:
        queue.put(("done", str(req.run_dir / "final.pt")))


class _Forwarder:
    """In the job's process, beside ``trainer.fit()``: hands rank 0's reports to the job's
    hooks and turns the job's cancel flag into the stop file."""

    def __init__(
        self,
        queue: Any,
        on_epoch: EpochFn,
        on_progress: ProgressFn | None,
        should_stop: StopFn,
        stop_file: Path,
    ):
        self.queue, self.on_epoch, self.on_progress = queue, on_epoch, on_progress
        self.should_stop, self.stop_file = should_stop, stop_file
        self.cancelled = False
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="train-forwarder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        self._done.set()
        self._thread.join(timeout=30)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                kind, item = self.queue.get_nowait()
            except Exception:  # ray.util.queue.Empty, or the queue actor already gone
                return
            self._handle(kind, item)

    def _handle(self, kind: str, item: Any) -> None:
        if self.error is not None:
            return
        try:
            if kind == "epoch" and isinstance(item, EpochReport):
                self.on_epoch(item)
            elif kind == "progress" and self.on_progress is not None:
                self.on_progress(item)
        except BaseException as exc:  # the job was lost or cancelled: stop training
            self.error = exc
            self.stop_file.touch()

    def _run(self) -> None:
        from ray.util.queue import Empty

        last = 0.0
        while not self._done.is_set():
            try:
                kind, item = self.queue.get(timeout=0.25)
                self._handle(kind, item)
            except Empty:
                pass
            except Exception as exc:  # the queue actor died: nothing more will come
                if self.error is None:
                    self.error = exc
                return
            now = time.monotonic()
            if not self.cancelled and now - last >= 0.5:
                last = now
                try:
                    stop = self.should_stop()
                except BaseException as exc:
                    self.error, stop = exc, True
                if stop:
                    self.cancelled = True
                    self.stop_file.touch()


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

    def __init__(
        self,
        *,
        max_failures: int = 2,
        eval_chunk: int = 8,
        gpu_eval_chunk: int = 64,
        parallel: int | None = None,
        checkpoint_every_s: float | None = 300.0,
        checkpoint_every_steps: int | None = None,
        settings: Any = None,
    ):
        self.max_failures = max_failures
        self.eval_chunk = eval_chunk
        self.gpu_eval_chunk = gpu_eval_chunk
        self.parallel = parallel
        if settings is not None:
            checkpoint_every_s = settings.train_checkpoint_every_s
            checkpoint_every_steps = settings.train_checkpoint_every_steps
        self.checkpoint_every_s = checkpoint_every_s
        self.checkpoint_every_steps = checkpoint_every_steps
        self._remotes: dict[tuple[Callable[..., Any], bool], Any] = {}

    def trainer(self, req: TrainRequest, queue: Any) -> Any:
        """The ``TorchTrainer`` of ``req`` (workers, CPUs and GPUs each, retries, storage)."""
        from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        r = req.resources
        per_worker: dict[str, float] = {"CPU": float(r.cpus_per_worker)}
        if r.gpus_per_worker > 0:
            per_worker["GPU"] = float(r.gpus_per_worker)
        return TorchTrainer(
            train_worker,
            train_loop_config={"request": req, "queue": queue},
            scaling_config=ScalingConfig(
                num_workers=r.workers,
                use_gpu=r.gpus_per_worker > 0,  # NCCL then, gloo otherwise
                resources_per_worker=per_worker,
            ),
            run_config=RunConfig(
                name=RUN_NAME,
                storage_path=str((req.run_dir / STORAGE_DIR).resolve()),
                failure_config=FailureConfig(max_failures=self.max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=2),
            ),
        )

    def train(
        self,
        req: TrainRequest,
        on_epoch: EpochFn,
        should_stop: StopFn,
        on_progress: ProgressFn | None = None,
    ) -> Path:
        from ray.util.queue import Queue

        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Ray Train passes this to its controller, which polls the workers that often: every
        # checkpoint report (each epoch) and the run's end wait for a poll (2 s by default).
        os.environ.setdefault(HEALTH_CHECK_ENV, TRAIN_HEALTH_CHECK_S)
        if req.checkpoint_every_s is None and req.checkpoint_every_steps is None:
            req = replace(
                req,
                checkpoint_every_s=self.checkpoint_every_s,
                checkpoint_every_steps=self.checkpoint_every_steps,
            )
        req.run_dir.mkdir(parents=True, exist_ok=True)
        stop_file = req.run_dir / STOP_FLAG
        stop_file.unlink(missing_ok=True)
        queue = Queue(actor_options={"num_cpus": 0})
        forwarder = _Forwarder(queue, on_epoch, on_progress, should_stop, stop_file)
        forwarder.start()
        failure: BaseException | None = None
        try:
            self.trainer(req, queue).fit()
        except Exception as exc:  # Ray Train's TrainingFailedError after the retries
            failure = exc
        finally:
            forwarder.finish()
            queue.shutdown(force=True)
        if forwarder.error is not None and not isinstance(forwarder.error, Exception):
            raise forwarder.error
        if isinstance(forwarder.error, JobCancelled):
            raise forwarder.error
        if forwarder.cancelled or stop_file.exists():
            stop_file.unlink(missing_ok=True)
            if forwarder.error is not None:
                raise forwarder.error
            raise JobCancelled("training stopped on request")
        if failure is not None:
            raise TrainingFailed(f"training failed after retries: {failure}") from failure
        final = req.run_dir / "final.pt"
        if not final.is_file():
            raise TrainingFailed(f"training ended without writing {final}")
        return final

    # ----- units of work ------------------------------------------------------------------------
    def _remote(self, fn: Callable[..., Any], fresh_process: bool) -> Any:
        # One remote function per unit and process kind, made once: Ray exports a remote
        # function's code to the cluster on its first call.
        key = (fn, fresh_process)
        if key not in self._remotes:
            self._remotes[key] = ray.remote(max_calls=1)(fn) if fresh_process else ray.remote(fn)
        return self._remotes[key]

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        resources: Resources | None = None,
        gpus: float = 0.0,
    ) -> ray.ObjectRef[Any]:
        """Start ``fn(*args)`` as a Ray task with its placement; its result's reference."""
        options = self.task_options(fn, resources=resources, gpus=gpus)
        fresh = placement_of(fn).fresh_process or gpus > 0
        ref: ray.ObjectRef[Any] = self._remote(fn, fresh).options(**options).remote(*args)
        return ref

    @staticmethod
    def task_options(
        fn: Callable[..., Any], *, resources: Resources | None = None, gpus: float = 0.0
    ) -> dict[str, Any]:
        """The Ray task options of one call of the unit ``fn``."""
        placement = placement_of(fn)
        options: dict[str, Any] = {"num_cpus": placement.cpus, "max_retries": placement.retries}
        if resources:
            options["resources"] = dict(resources)
        if gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {gpus}")
        if gpus > 0:
            if not placement.gpu:
                name = getattr(fn, "__qualname__", repr(fn))
                raise ValueError(f"unit {name} does not compute on a GPU; call it without gpus")
            options["num_gpus"] = float(gpus)
        return options

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        resources: Resources | None = None,
        gpus: float = 0.0,
    ) -> T:
        result: T = _get(self.submit(fn, *args, resources=resources, gpus=gpus))
        return result

    def map(
        self,
        fn: Callable[..., T],
        calls: Iterable[Sequence[Any]],
        *,
        resources: Resources | None = None,
        gpus: float = 0.0,
    ) -> list[T]:
        refs = [self.submit(fn, *args, resources=resources, gpus=gpus) for args in calls]
        results: list[T] = _get(refs) if refs else []
        return results

    def chunks(self, items: Sequence[X], *, gpus: float = 0.0) -> list[list[X]]:
        # As many chunks as the cluster runs such calls at once (free CPUs, or free GPUs over
        # each call's share), at most ``eval_chunk`` items each (``gpu_eval_chunk`` for GPU
        # calls): a small batch spreads over every worker, a large one keeps tasks short.
        free = ray.available_resources()
        at_once = free.get("GPU", 0.0) / gpus if gpus > 0 else free.get("CPU", 1)
        parallel = self.parallel or max(1, int(at_once + 1e-9))
        cap = self.gpu_eval_chunk if gpus > 0 else self.eval_chunk
        size = max(1, min(cap, -(-len(items) // parallel)))
        listed = list(items)
        return [listed[i : i + size] for i in range(0, len(listed), size)]
