"""Training glue: the trainer's config from a job's training section, and one (resumable)
training run that reports typed :class:`EpochReport` records.

Heavy modules are imported inside the functions so that importing the pipeline stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from search_spaces import SearchSpace
from workers.data import DatasetSplits
from workers.pipeline.records import EpochReport, TrainingProgress, TrainRequest
from workers.pipeline.work.loading import load_data


# Presets of the job spec: how much of the default schedule to run.
def train_config(space: SearchSpace, data: DatasetSplits, training: Mapping[str, Any]) -> Any:
    """The trainer's config from the job's training section (preset, scale, overrides). The
    preset's scale and what a sampler policy sets come from the catalog's training entries."""
    from nas_service.catalog import training as catalog_training
    from workers.training import default_config

    sampler = str(training.get("sampler", "complexity-aware"))
    cfg = default_config(space, data, sampler=sampler)
    scale = catalog_training.preset_scale(str(training.get("preset", "tiny"))) * float(
        training.get("epochs_scale", 1.0)
    )
    cfg = cfg.scaled(scale)
    update: dict[str, Any] = {}
    if training.get("batch_size"):
        update["batch_size"] = int(training["batch_size"])
    if training.get("lr"):
        lr = float(training["lr"])
        top = max(p.lr for p in cfg.phases)
        update["phases"] = [p.model_copy(update={"lr": p.lr * lr / top}) for p in cfg.phases]
    if training.get("augment"):
        from nas_service.catalog.datasets.augment import AugmentOptions

        update["augment"] = AugmentOptions.model_validate(training["augment"])
    policy = training.get("sampler_policy")
    if policy:
        settings = catalog_training.policy_settings(sampler, str(policy))
        update["sampler"] = cfg.sampler.model_copy(update=settings)
    return cfg.model_copy(update=update) if update else cfg


class _Callback:
    """Adapts the trainer's callback hooks to ``on_epoch(EpochReport)``, step-level
    ``on_progress(TrainingProgress)`` (at most every ``progress_every_s``) and
    ``should_stop`` (a stop file on a shared store is looked at most twice a second)."""

    def __init__(
        self,
        on_epoch: Callable[[EpochReport], None],
        should_stop: Callable[[], bool],
        resumed_from: str | None,
        on_progress: Callable[[TrainingProgress], None] | None = None,
        progress_every_s: float = 2.0,
    ):
        self._on_epoch = on_epoch
        self._should_stop = should_stop
        self._resumed_from = resumed_from
        self._on_progress = on_progress
        self._progress_every_s = progress_every_s
        self._last_progress = 0.0
        self._last_stop_check = 0.0
        self._stop = False

    def on_epoch(self, info: Mapping[str, Any], net: Any = None) -> None:
        # Only the first epoch after a resume carries it: where this attempt started.
        report = EpochReport.from_info(info, resumed_from=self._resumed_from)
        self._resumed_from = None
        self._on_epoch(report)

    def on_step(self, info: Mapping[str, Any], net: Any = None) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress < self._progress_every_s:
            return
        self._last_progress = now
        self._on_progress(TrainingProgress.of_step(info))

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._last_stop_check >= 0.5:
            self._last_stop_check = now
            self._stop = bool(self._should_stop())
        return self._stop


def train(
    req: TrainRequest,
    *,
    on_epoch: Callable[[EpochReport], None],
    should_stop: Callable[[], bool],
    on_progress: Callable[[TrainingProgress], None] | None = None,
    dist: Any = None,
    resume_from: Path | None = None,
    on_checkpoint: Callable[[Path | None, dict[str, Any]], None] | None = None,
    device: str = "auto",
) -> Path:
    """Train (resuming from ``resume_from``, else the checkpoints in ``req.run_dir``); returns
    ``req.run_dir/final.pt``. ``device`` ``auto`` trains on CUDA when this process sees a GPU.
    On one rank of several (``dist``, a ``workers.training.distributed.Dist``) only rank 0
    reports; every rank checks ``should_stop`` (the trainer reduces the answers)."""
    from search_spaces import get_space
    from workers.training import train_supernet
    from workers.training.checkpoint import list_checkpoints

    space = get_space(**dict(req.space_spec))
    splits = load_data(req.data)
    cfg = train_config(space, splits, req.training)
    run_dir = req.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    main = dist is None or dist.rank == 0
    existing = list_checkpoints(run_dir)
    start = resume_from if resume_from is not None else (existing[-1] if existing else None)
    callback = _Callback(
        on_epoch if main else _ignore,
        should_stop,
        start.name if start is not None else None,
        on_progress if main else None,
    )
    if start is not None and main:
        # Report the epoch the resume starts from again: a crash between its checkpoint and
        # its report would otherwise leave a gap in the curves (sinks drop repeated epochs).
        last = _last_epoch_info(start)
        if last is not None:
            callback.on_epoch(last)
    train_supernet(
        space,
        splits,
        cfg,
        run_dir=run_dir,
        callbacks=[callback],
        seed=req.seed,
        resume=resume_from if resume_from is not None else True,
        device=device,
        precision=req.resources.precision,
        sync_bn=req.resources.sync_bn,
        dist=dist,
        checkpoint_every_steps=req.checkpoint_every_steps,
        checkpoint_every_s=req.checkpoint_every_s,
        on_checkpoint=on_checkpoint,
    )
    return run_dir / "final.pt"


def _ignore(report: EpochReport) -> None:
    return None


def _last_epoch_info(checkpoint: Path) -> dict[str, Any] | None:
    import json

    import torch

    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    history = json.loads(blob.get("history", "[]")) if isinstance(blob, dict) else []
    return dict(history[-1]) if history else None
