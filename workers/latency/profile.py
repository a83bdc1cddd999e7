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
import warnings
from collections.abc import Callable, Sequence
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


def runtimes() -> list[str]:
    """The device runtimes of the catalog (``nas_service.catalog.devices``)."""
    from nas_service.catalog import devices

    return devices.names()


CLOCKS = ("wall", "cpu")


def prepare(module: nn.Module, example: torch.Tensor, runtime: str) -> Callable[..., Any]:
    """``module`` in eval mode as it will be timed: eager, or TorchScript as a deployment runs
    the exported network: traced (what ``workers.export`` ships) and frozen for inference
    (``torch.jit.freeze``: weights become constants, BN folds into the convolutions). A module
    that already is TorchScript (prepared once, timed many times) is used as it is.

    Frozen rather than only traced: on 80 small-input mbv3 networks, one round of timings
    agreed with three more at Kendall tau 0.88 frozen, 0.84 traced (and ran 11% faster).
    TorchScript keeps something of every frozen network in the process after the module is
    gone (about 30 MB per small-input mbv3 network; neither gc nor clearing its class registry
    frees it): time many networks in a process that ends (the Ray latency tasks get a fresh
    worker per call)."""
    if runtime not in runtimes():
        raise ValueError(f"runtime {runtime!r} is not known; use one of {runtimes()}")
    if isinstance(module, torch.jit.ScriptModule):
        return module
    module.eval()
    if runtime == "eager":
        return module
    with torch.inference_mode(), warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is the format users
        # download (workers.export), so it is what gets timed. check_trace would run the
        # network twice more (more than half of the cost).
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))


@dataclass
class SpeedReference:
    """A fixed network, prepared on the device, that measurements are paired with.

    ``nominal_ms`` converts the paired ratio back to milliseconds: by default the median of the
    reference's own runs when it was calibrated (``calibrate``); pass a stored value so that
    measurements of several processes share one scale.
    """

    run: Callable[[], Any]
    nominal_ms: float
    device: torch.device

    @classmethod
    def calibrate(
        cls,
        module: nn.Module,
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
        device: str | torch.device = "cpu",
        runtime: str = "eager",
        clock: str = "wall",
        nominal_ms: float | None = None,
        runs: int = 60,
    ) -> SpeedReference:
        dev = torch.device(device)
        module.to(dev)
        x = torch.randn(batch_size, *input_shape, device=dev)
        fn = prepare(module, x, runtime)

        def run() -> Any:
            return fn(x)

        ref = cls(run, 1.0, dev)
        if nominal_ms is None:
            with torch.inference_mode():
                for _ in range(max(3, runs // 10)):
                    run()
                times = [ref.time(_now(clock)) for _ in range(runs)]
            nominal_ms = float(np.median(times))
        ref.nominal_ms = float(nominal_ms)
        return ref

    def time(self, now: Callable[[], int]) -> float:
        _sync(self.device)
        t0 = now()
        self.run()
        _sync(self.device)
        return (now() - t0) / 1e6


def _now(clock: str) -> Callable[[], int]:
    if clock not in CLOCKS:
        raise ValueError(f"clock {clock!r} is not known; use 'wall' or 'cpu'")
    return time.thread_time_ns if clock == "cpu" else time.perf_counter_ns


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
    runtime: str = "eager",
    reference: SpeedReference | None = None,
) -> LatencyStats:
    """Forward-pass latency of ``module`` on ``batch_size`` inputs of ``input_shape``; with a
    ``reference``, every run is paired with one of the reference and speed-normalised."""
    if repeats < 1 or warmup < 0 or batch_size < 1 or threads < 1:
        raise ValueError(
            f"measure_latency needs repeats >= 1, warmup >= 0, batch_size >= 1, threads >= 1; "
            f"got repeats={repeats}, warmup={warmup}, batch_size={batch_size}, threads={threads}"
        )
    dev = torch.device(device)
    now = _now(clock)
    if clock == "cpu" and (dev.type != "cpu" or threads != 1):
        raise ValueError(
            f"clock='cpu' times the calling thread: it needs device cpu and threads=1, got "
            f"device={dev.type}, threads={threads}"
        )
    if reference is not None and reference.device != dev:
        raise ValueError(f"the reference runs on {reference.device}, the module on {dev}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    scripted = isinstance(module, torch.jit.ScriptModule)
    was_training = False if scripted else module.training
    try:
        if not scripted:
            module.to(dev)
        x = torch.randn(batch_size, *input_shape, device=dev)
        fn = prepare(module, x, runtime)  # eval mode; traced and frozen for torchscript
        for _ in range(warmup):
            fn(x)
            if reference is not None:
                reference.run()
        _sync(dev)
        raw = []
        for _ in range(repeats):
            ref_ms = reference.time(now) if reference is not None else 0.0
            _sync(dev)
            t0 = now()
            fn(x)
            _sync(dev)
            ms = (now() - t0) / 1e6
            if reference is not None:
                ms *= reference.nominal_ms / max(ref_ms, 1e-6)
            raw.append(ms)
    finally:
        torch.set_num_threads(old_threads)
        if not scripted:
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
    runtime: str = "eager"
    paired: bool = False  # pair every run with a reference network (speed-normalised)

    def __post_init__(self) -> None:
        problems = profile_problems(self)
        if problems:
            said = "; ".join(f"{name} {reason}" for name, reason in problems)
            raise ValueError(f"device profile '{self.name}': {said}")


def profile_problems(p: DeviceProfile) -> list[tuple[str, str]]:
    """(field, reason) for every setting of ``p`` that cannot be measured with."""
    out: list[tuple[str, str]] = []
    if p.clock not in CLOCKS:
        out.append(("clock", f"must be one of {list(CLOCKS)}, got {p.clock!r}"))
    if p.runtime not in runtimes():
        out.append(("runtime", f"must be one of {runtimes()}, got {p.runtime!r}"))
    if p.torch_device.split(":")[0] not in ("cpu", "cuda"):
        out.append(("torch_device", f"must be 'cpu' or 'cuda[:N]', got {p.torch_device!r}"))
    for name, low in (("threads", 1), ("batch_size", 1), ("warmup", 0), ("repeats", 1)):
        if getattr(p, name) < low:
            out.append((name, f"must be >= {low}, got {getattr(p, name)}"))
    if p.clock == "cpu" and (p.torch_device != "cpu" or p.threads != 1):
        out.append(("clock", "'cpu' times the calling thread: it needs torch_device 'cpu' and "
                    f"threads 1, got {p.torch_device!r} and {p.threads}"))  # fmt: skip
    return out


_DEVICES: dict[str, DeviceProfile] = {
    "cpu": DeviceProfile("cpu"),
    "cpu-thread": DeviceProfile("cpu-thread", clock="cpu"),
    "cpu-stable": DeviceProfile(
        "cpu-stable", clock="cpu", runtime="torchscript", paired=True, warmup=3, repeats=8
    ),
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
    module: nn.Module,
    input_shape: Sequence[int],
    profile: DeviceProfile,
    reference: SpeedReference | None = None,
) -> LatencyStats:
    """``measure_latency`` with the profile's settings (pass the reference of a paired one)."""
    if profile.paired and reference is None:
        raise ValueError(
            f"device profile '{profile.name}' pairs its timings with a reference network; "
            "measure through a LatencyMeter (workers.latency.meter)"
        )
    return measure_latency(
        module,
        input_shape,
        batch_size=profile.batch_size,
        warmup=profile.warmup,
        repeats=profile.repeats,
        threads=profile.threads,
        device=profile.torch_device,
        clock=profile.clock,
        runtime=profile.runtime,
        reference=reference if profile.paired else None,
    )
