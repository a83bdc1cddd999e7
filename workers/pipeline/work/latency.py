"""Latency on a job's target devices: the lookup table built once per (device, space), and
the real timing of extracted subnets.

Both run on the device (a node carrying the device's Ray resource, see
:func:`device_resources`) in a fresh worker process each: tracing a network for the
torchscript runtime leaves about the network's size behind in the process (TorchScript keeps
it; neither gc nor clearing its class registry frees it), so a reused worker would grow with
every front it measures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from search_spaces import SearchSpace
from workers.pipeline.engine import unit
from workers.pipeline.job import DeviceInfo
from workers.pipeline.work.cache import worker_cache
from workers.pipeline.work.loading import load_net

LatencyFn = Callable[[Mapping[str, int]], float]

# How much of a device's custom resource one latency task takes: small, so that several
# measurements can queue on the node, while only nodes that carry the resource qualify.
DEVICE_RESOURCE_SHARE = 0.01


def device_resources(device: DeviceInfo) -> dict[str, float]:
    """The node resources latency work for ``device`` needs (none for a device without one)."""
    return {device.ray_resource: DEVICE_RESOURCE_SHARE} if device.ray_resource else {}


def profile(device: DeviceInfo) -> Any:
    """The measurement profile of a job's device (the devices table's settings)."""
    from workers.latency import DeviceProfile

    return DeviceProfile(
        name=device.name,
        torch_device=device.torch_device,
        threads=device.threads,
        batch_size=device.batch_size,
        warmup=device.warmup,
        repeats=device.repeats,
        clock=device.clock,
        runtime=device.runtime,
        paired=device.paired,
    )


def meter(device: DeviceInfo, space: SearchSpace, cache_dir: Path) -> Any:
    """The device's meter for ``space``. A paired device's speed reference is stored in
    ``cache_dir``, so the lookup table and the re-measured front share one millisecond scale."""
    from workers.latency import LatencyMeter

    return LatencyMeter(space, profile(device), cache_dir=cache_dir)


@unit(retries=1, fresh_process=True)
def build_table(device: DeviceInfo, space_spec: Mapping[str, Any], cache_dir: Path | str) -> Path:
    """Build (once per device and space) the per-operation latency table, with its scale and
    constant fitted on a few whole networks measured on the device; returns the table's path."""
    import numpy as np

    from search_spaces import get_space
    from workers.latency import LatencyTable, table_path

    space = get_space(**dict(space_spec))
    m = meter(device, space, Path(cache_dir))
    path = table_path(cache_dir, space, m.profile)
    if path.is_file():
        return path
    table = LatencyTable.build(space, m.profile, meter=m)
    rng = np.random.default_rng(0)
    archs = [space.min_arch(), space.max_arch(), *(space.sample(rng) for _ in range(3))]
    measured = [m.time_arch(a).mean_ms for a in archs]
    table.fit_constant(archs, measured)
    return table.save(path)


def load_table(path: Path | str) -> LatencyFn:
    """The predicted latency (ms) of an arch from a table ``build_table`` wrote."""
    from workers.latency import LatencyTable

    table = LatencyTable.load(Path(path))

    def predict(arch: Mapping[str, int]) -> float:
        return float(table.predict([dict(arch)])[0])

    return predict


@unit(retries=1, fresh_process=True)
def measure(
    device: DeviceInfo,
    checkpoint: Path | str,
    archs: Sequence[Mapping[str, int]],
    cache_dir: Path | str,
) -> list[float]:
    """Real latency (ms, trimmed mean) of each extracted subnet on ``device``."""
    space, net = load_net(checkpoint)
    m = meter(device, space, Path(cache_dir))
    with worker_cache().lock:
        subnets = [net.extract(dict(a)) for a in archs]
    return [float(m.time_arch(a, sub).mean_ms) for a, sub in zip(archs, subnets, strict=True)]
