"""Scoring subnets of a trained supernet: accuracy and loss, BN recalibrated first.

``evaluate`` is the unit of work (one chunk of archs, in one process); ``evaluate_all`` is how
a stage runs it: in chunks, in parallel where the engine can. ``device`` follows the rule the
trainer uses (``workers.devices.resolve_device``): ``auto``, the default, recalibrates and
scores on CUDA when the worker process sees a GPU, else on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workers.pipeline.engine import Engine, unit
from workers.pipeline.job import DataRef
from workers.pipeline.work.cache import worker_cache
from workers.pipeline.work.loading import load_data

# BN recalibration (search scores and exported subnets): the image count and batch of the
# shared rule in workers.bn, which are also the trainer's defaults, so every stage calibrates
# on the same images. tests/workers/test_evaluation.py keeps these equal to workers.bn's.
BN_IMAGES = 2000
BN_BATCH = 200


def bn_subset(data: DataRef, seed: int) -> Any:
    """The training images used for BN recalibration: ``workers.bn.calibration_images``, the
    rule the trainer's evaluation and ``SubnetEvaluator`` follow for the same seed."""
    from workers.training.extract import bn_calibration_images

    return bn_calibration_images(load_data(data), BN_IMAGES, seed)


# Evaluation is cheap to repeat and its worker keeps its caches: two retries.
@unit(retries=2, gpu=True)
def evaluate(
    checkpoint: Path | str,
    data: DataRef,
    archs: Sequence[Mapping[str, int]],
    seed: int,
    split: str = "val",
    device: str = "auto",
) -> list[dict[str, float]]:
    """Accuracy and loss of each subnet on ``split``, BN recalibrated first. ``val`` is what
    the search selects on; ``test`` is held out and only reported. A split without examples
    (``test_fraction: 0``) gives empty dicts: nothing was measured. ``device``: where the
    recalibration and scoring run (``auto``: CUDA when this process sees a GPU)."""
    cache = worker_cache()
    splits = cache.data(data)
    if splits.sizes().get(split, 0) == 0:
        return [{} for _ in archs]
    with cache.lock:
        ev = cache.evaluator(checkpoint, data, seed, device)
        results = ev.evaluate([dict(a) for a in archs], split=split)
    return [{"accuracy": float(r["accuracy"]), "loss": float(r["loss"])} for r in results]


def evaluate_all(
    engine: Engine,
    checkpoint: Path | str,
    data: DataRef,
    archs: Sequence[Mapping[str, int]],
    seed: int,
    split: str = "val",
    device: str = "auto",
    gpus: float = 0.0,
) -> list[dict[str, float]]:
    """``evaluate`` over ``archs`` in the engine's chunks; results in the order of ``archs``.
    Each chunk asks the engine for ``gpus`` GPUs (the job's ``JobInputs.gpus``); ``device`` is
    resolved by each worker, so ``auto`` means the GPU that worker was given, if any."""
    chunks = engine.chunks([dict(a) for a in archs], gpus=gpus)
    parts = engine.map(
        evaluate, [(checkpoint, data, c, seed, split, device) for c in chunks], gpus=gpus
    )
    return [r for part in parts for r in part]
