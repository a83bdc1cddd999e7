"""Timing the networks of one space on one device profile.

A :class:`LatencyMeter` owns what a measurement on (space, device profile) needs beyond the
profile's settings: for a paired profile, the speed reference, which is the space's middle arch
(the middle choice of every dimension) so that it takes about as long as the networks it is
paired with. The reference's nominal latency fixes the millisecond scale of every paired
measurement; with a ``cache_dir`` it is stored there on first use, per (device profile, space),
so that a lookup table built in one process and networks timed in another share one scale.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from search_spaces.base import Arch, SearchSpace
from workers.latency.profile import (
    DeviceProfile,
    LatencyStats,
    SpeedReference,
    get_device,
    measure_profile,
    prepare,
)


def cache_key(space: SearchSpace, profile: DeviceProfile) -> str:
    ident = json.dumps({"space": space.spec(), "profile": profile.__dict__}, sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, doc: Any, **dump_options: Any) -> None:
    """Write to a temp file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, **dump_options)
    os.replace(tmp, path)


def middle_arch(space: SearchSpace) -> Arch:
    return space.canonical({d.name: d.choices[len(d.choices) // 2] for d in space.dims})


class LatencyMeter:
    def __init__(
        self,
        space: SearchSpace,
        device: str | DeviceProfile = "cpu",
        *,
        cache_dir: str | Path | None = None,
    ):
        self.space = space
        self.profile = get_device(device) if isinstance(device, str) else device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._reference: SpeedReference | None = None

    @property
    def reference(self) -> SpeedReference | None:
        """The speed reference of a paired profile (calibrated on first use), else None."""
        if not self.profile.paired:
            return None
        if self._reference is None:
            self._reference = self._calibrate()
        return self._reference

    def _reference_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        key = cache_key(self.space, self.profile)
        return self.cache_dir / f"reference-{self.profile.name}-{self.space.id}-{key}.json"

    def _calibrate(self) -> SpeedReference:
        from search_spaces.nn import build_static

        arch = middle_arch(self.space)
        path = self._reference_path()
        nominal: float | None = None
        if path is not None and path.is_file():
            try:
                nominal = float(json.loads(path.read_text())["nominal_ms"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"speed reference {path} cannot be read: {exc}") from exc
        p = self.profile
        ref = SpeedReference.calibrate(
            build_static(self.space, arch),
            self.space.input_shape(arch),
            batch_size=p.batch_size,
            device=p.torch_device,
            runtime=p.runtime,
            clock=p.clock,
            nominal_ms=nominal,
        )
        if path is not None and nominal is None:
            doc = {"nominal_ms": ref.nominal_ms, "arch": self.space.to_json(arch)}
            write_json_atomic(path, doc)
        return ref

    def _network(self, arch: Mapping[str, int], module: nn.Module | None) -> nn.Module:
        if module is not None:
            return module
        from search_spaces.nn import build_static

        return build_static(self.space, arch)

    def prepare(self, arch: Mapping[str, int], module: nn.Module | None = None) -> nn.Module:
        """The network of ``arch`` as the profile times it, prepared once so that it can be timed
        many times (a frozen TorchScript module for a ``torchscript`` profile)."""
        return self.prepare_module(self._network(arch, module), self.space.input_shape(arch))

    def prepare_module(self, module: nn.Module, input_shape: Sequence[int]) -> nn.Module:
        """Any module (a lookup-table unit) prepared once for inputs of ``input_shape``."""
        p = self.profile
        module.to(p.torch_device)
        example = torch.randn(p.batch_size, *input_shape, device=p.torch_device)
        prepared = prepare(module, example, p.runtime)
        assert isinstance(prepared, nn.Module)
        return prepared

    def time(self, module: nn.Module, input_shape: Sequence[int]) -> LatencyStats:
        """Latency of any module (a lookup-table unit, an extracted subnet) on the profile."""
        return measure_profile(module, input_shape, self.profile, self.reference)

    def time_arch(self, arch: Mapping[str, int], module: nn.Module | None = None) -> LatencyStats:
        """Latency of ``arch``: ``module`` if given (an extracted subnet), else a freshly built
        static network of the arch."""
        return self.time(self._network(arch, module), self.space.input_shape(arch))
