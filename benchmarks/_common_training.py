"""Helpers shared by the training benchmarks: environment record, JSON output, scratch
training of a static subnet, test accuracy of extracted subnets, fixed arch sets, and training
several sampler variants that share their first (sampler-free) phase."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import Arch, SearchSpace
from search_spaces.nn import build_static
from workers.bn import BN_BATCH, calibration_batches, recalibrate_bn
from workers.data import DatasetSplits
from workers.training.checkpoint import atomic_save, epoch_checkpoint_path
from workers.training.config import TrainConfig
from workers.training.extract import bn_calibration_images
from workers.training.loop import TrainResult, derive_seed, train_supernet
from workers.training.optim import make_optimizer, set_lr, step_lr

RESULTS = Path(__file__).parent / "results"


def environment() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_avg_1m_at_start": os.getloadavg()[0],
    }


def write_result(name: str, payload: dict[str, Any], stem: str | None = None) -> Path:
    """Write ``results/<stem or name>.json`` with the command and the environment."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stem or name}.json"
    body = {
        "benchmark": name,
        "command": "python -m benchmarks." + name + " " + " ".join(sys.argv[1:]),
        "environment": environment(),
        **payload,
    }
    out.write_text(json.dumps(body, indent=1))
    return out


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct / len(x)


def bn_subset(data: DatasetSplits, n: int, seed: int) -> torch.Tensor:
    return bn_calibration_images(data, n, seed)


def extracted_test_accuracy(
    net: nn.Module, arch: Arch, data: DatasetSplits, bn_x: torch.Tensor, split: str = "test"
) -> float:
    """BN-recalibrate ``arch`` inside the supernet on training images, extract it as a static
    module and score it on ``split`` (no fine-tuning)."""
    net.set_active(arch)  # type: ignore[operator]
    recalibrate_bn(net, (net.prepare_input(b) for b in calibration_batches(bn_x, BN_BATCH)))  # type: ignore[operator]
    sub = net.extract(arch)  # type: ignore[operator]
    x, y = data.tensors(split)
    return accuracy(sub, net.prepare_input(x), y)  # type: ignore[operator]


def train_static(
    space: SearchSpace,
    arch: Arch,
    data: DatasetSplits,
    epochs: int,
    lr: float,
    config: TrainConfig,
    seed: int,
) -> tuple[nn.Module, float]:
    """Train the static subnet of ``arch`` from scratch with the supernet's recipe (SGD
    Nesterov, cosine with warm-up, label smoothing, clipping) for ``epochs`` epochs."""
    torch.manual_seed(seed)
    model = build_static(space.spec(), arch)
    prep = _input_preparer(space, arch)
    opt = make_optimizer(model, lr, config)
    bs = config.batch_size
    steps = data.steps("train", bs)
    total = steps * epochs
    t0 = time.perf_counter()
    k = 0
    for epoch in range(epochs):
        model.train()
        # Batches from the dataset's input pipeline (never the whole split in memory).
        batches = data.batches(
            "train", bs, seed=derive_seed(seed, 3, 99, 0), epoch=epoch, augment=config.augment
        )
        for xb, yb in batches:
            set_lr(opt, step_lr(lr, k, total, config))
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(prep(xb)), yb, label_smoothing=config.label_smoothing)
            loss.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), config.grad_clip)
            opt.step()
            k += 1
    return model, time.perf_counter() - t0


def _input_preparer(space: SearchSpace, arch: Arch) -> Any:
    """The static subnets take inputs shaped like the supernet's ``prepare_input`` output."""
    from search_spaces.nn import build_supernet

    probe = build_supernet(space)
    probe.set_active(arch)
    return probe.prepare_input


def spread_archs(
    space: SearchSpace, n: int, seed: int, pool: int = 2000, mode: str = "quantile"
) -> list[Arch]:
    """``n`` distinct archs spanning the FLOPs range, min and max included.

    ``quantile``: evenly spaced quantiles of seeded random archs (dense where random archs
    are dense, i.e. mid-size). ``flops``: the archs nearest to evenly spaced FLOPs targets
    (equal weight to every part of the range)."""
    rng = np.random.default_rng(seed)
    cands = [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(pool)]
    uniq = {space.encode(a): a for a in cands}
    archs = sorted(uniq.values(), key=space.flops)
    if mode == "quantile":
        idx = np.unique(np.round(np.linspace(0, len(archs) - 1, n)).astype(int))
        return [archs[i] for i in idx]
    flops = np.array([space.flops(a) for a in archs], dtype=float)
    taken: set[int] = set()
    for target in np.linspace(flops[0], flops[-1], n):
        order = np.argsort(np.abs(flops - target))
        taken.add(int(next(i for i in order if int(i) not in taken)))
    return [archs[i] for i in sorted(taken)]


def quantile_archs(space: SearchSpace, n: int, seed: int = 1234, pool: int = 4000) -> list[Arch]:
    """``n`` archs stratified over the FLOPs quantiles of uniform archs, sorted by FLOPs: the
    arch nearest to each quantile ``(i + 0.5) / n`` of ``pool`` seeded uniform draws. The
    smallest and largest archs (trained every step by the sandwich rule) are left out, so the
    set measures what the sampler decides."""
    rng = np.random.default_rng(seed)
    ends = {space.encode(space.min_arch()), space.encode(space.max_arch())}
    uniq = {space.encode(a): a for a in (space.sample(rng) for _ in range(pool))}
    archs = sorted((a for g, a in uniq.items() if g not in ends), key=space.flops)
    idx = np.unique(np.floor((np.arange(n) + 0.5) / n * len(archs)).astype(int))
    return [archs[i] for i in idx]


def train_sharing_first_phase(
    space: SearchSpace,
    data: DatasetSplits,
    configs: dict[str, TrainConfig],
    seed: int,
    root: Path,
) -> dict[str, tuple[TrainResult, float]]:
    """Train one supernet per config; the configs may differ only in ``sampler``.

    The first phase (the full network, no sampled subnets) does not touch the sampler, so it
    is trained once, by the first config; every other config resumes from that run's
    end-of-phase checkpoint, relabelled with its own config. Resuming reproduces an
    uninterrupted run exactly (tests/workers/test_training.py), so each result equals a run
    from scratch with its config. Returns ``{name: (result, seconds)}``; the first phase's
    seconds count in the first config's time only.
    """
    names = list(configs)
    first = configs[names[0]]
    if first.phases[0].random_subnets or first.phases[0].unlock:
        raise ValueError("the first phase must train the full network alone to be shared")
    for name in names[1:]:
        if configs[name].model_copy(update={"sampler": first.sampler}) != first:
            raise ValueError(f"config '{name}' differs from '{names[0]}' beyond the sampler")
    out: dict[str, tuple[TrainResult, float]] = {}
    t0 = time.perf_counter()
    res = train_supernet(space, data, first, run_dir=root / names[0], seed=seed)
    out[names[0]] = (res, time.perf_counter() - t0)
    shared = epoch_checkpoint_path(root / names[0], 0, first.phases[0].epochs)
    for name in names[1:]:
        blob = torch.load(shared, map_location="cpu", weights_only=True)
        blob["config"] = configs[name].model_dump_json()
        start = epoch_checkpoint_path(root / name, 0, first.phases[0].epochs)
        atomic_save(blob, start)
        t0 = time.perf_counter()
        res = train_supernet(space, data, configs[name], run_dir=root / name, seed=seed)
        out[name] = (res, time.perf_counter() - t0)
    return out
