"""Latency measurement on a named device.

``measure_latency`` times a module's forward pass: warm-up runs, then timed repeats with a fixed
thread count and batch size; CUDA work is synchronised around every run. It reports a trimmed
mean (10% cut at each end, robust to the scheduler hiccups of a shared machine), the standard
deviation of the kept runs, p50 and p90.

``clock="wall"`` (default) times elapsed time. ``clock="cpu"`` times the CPU time of the calling
thread instead: with one intra-op thread that is the forward pass's compute alone, without the
time the scheduler gives to other processes, which is what makes latency measurable at all on a
machine shared by many jobs (there wall-clock runs of one network varied 4x between rounds). It
is CPU-only and assumes ``threads=1``.

A :class:`DeviceProfile` names a device: torch device, threads, batch size, clock. ``cpu`` is
built in (1 thread, batch 1, wall clock); ``cpu-thread`` is the same with the thread-CPU clock;
``cuda`` exists when a GPU does; ``register_device`` adds more.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class LatencyStats:
    mean_ms: float  # trimmed mean
    std_ms: float
    p50_ms: float
    p90_ms: float
    repeats: int
    raw_ms: list[float] = field(repr=False, default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def trimmed(values: Sequence[float] | np.ndarray, cut: float = 0.1) -> np.ndarray:
    """The values with the lowest and highest ``cut`` share removed."""
    v = np.sort(np.asarray(values, dtype=float))
    k = int(len(v) * cut)
    return v[k : len(v) - k] if len(v) - 2 * k >= 1 else v


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_latency(
    module: nn.Module,
    input_shape: Sequence[int],
    *,
    batch_size: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    threads: int = 1,
    device: str | torch.device = "cpu",
    trim: float = 0.1,
    clock: str = "wall",
) -> LatencyStats:
    """Forward-pass latency of ``module`` on ``batch_size`` inputs of ``input_shape``."""
    if repeats < 1 or warmup < 0 or batch_size < 1 or threads < 1:
        raise ValueError(
            f"measure_latency needs repeats >= 1, warmup >= 0, batch_size >= 1, threads >= 1; "
            f"got repeats={repeats}, warmup={warmup}, batch_size={batch_size}, threads={threads}"
        )
    dev = torch.device(device)
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock {clock!r} is not known; use 'wall' or 'cpu'")
    if clock == "cpu" and (dev.type != "cpu" or threads != 1):
        raise ValueError(
            f"clock='cpu' times the calling thread: it needs device cpu and threads=1, got "
            f"device={dev.type}, threads={threads}"
        )
    now = time.thread_time_ns if clock == "cpu" else time.perf_counter_ns
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    was_training = module.training
    module.eval()
    try:
        module.to(dev)
        x = torch.randn(batch_size, *input_shape, device=dev)
        for _ in range(warmup):
            module(x)
        _sync(dev)
        raw = []
        for _ in range(repeats):
            _sync(dev)
            t0 = now()
            module(x)
            _sync(dev)
            raw.append((now() - t0) / 1e6)
    finally:
        torch.set_num_threads(old_threads)
        module.train(was_training)
    kept = trimmed(raw, trim)
    return LatencyStats(
        mean_ms=float(kept.mean()),
        std_ms=float(kept.std()),
        p50_ms=float(np.percentile(raw, 50)),
        p90_ms=float(np.percentile(raw, 90)),
        repeats=repeats,
        raw_ms=[float(r) for r in raw],
    )


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    torch_device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    warmup: int = 10
    repeats: int = 50
    clock: str = "wall"


_DEVICES: dict[str, DeviceProfile] = {
    "cpu": DeviceProfile("cpu"),
    "cpu-thread": DeviceProfile("cpu-thread", clock="cpu"),
}


def register_device(profile: DeviceProfile) -> None:
    _DEVICES[profile.name] = profile


def get_device(name: str) -> DeviceProfile:
    if name == "cuda" and "cuda" not in _DEVICES and torch.cuda.is_available():
        _DEVICES["cuda"] = DeviceProfile("cuda", "cuda", threads=1, batch_size=1)
    if name not in _DEVICES:
        known = sorted(_DEVICES) + (["cuda"] if torch.cuda.is_available() else [])
        raise ValueError(f"unknown device profile '{name}'; known: {sorted(set(known))}")
    return _DEVICES[name]


def measure_profile(
    module: nn.Module, input_shape: Sequence[int], profile: DeviceProfile
) -> LatencyStats:
    return measure_latency(
        module,
        input_shape,
        batch_size=profile.batch_size,
        warmup=profile.warmup,
        repeats=profile.repeats,
        threads=profile.threads,
        device=profile.torch_device,
        clock=profile.clock,
    )
