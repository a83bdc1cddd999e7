"""Per-operation latency lookup table.

The table times every distinct unit of the space (``workers.latency.units``) on the device in
``passes`` interleaved passes (3 by default: every unit once per pass, so a slow phase of the
machine is spread over many rows) and stores mean, variance and count per key; it is cached as
JSON per (device profile, space spec) so it is built once. Timing a unit alone also times one
call of a module, which the network pays once, not once per unit: that call overhead is timed
per input shape (an identity module) and taken off every row (with the frozen TorchScript
runtime it is ~35-50 us per call, ~1% of a small network per unit, and networks of the space
differ by up to 10 units). A network's latency is ``scale * sum of its units' rows + constant``,
both fitted by least squares on a few measured whole networks: the constant covers the one call
and the framework's work between units, the scale what timing a unit alone misses (run in a
loop, a unit keeps its weights in cache; inside a network it does not). With a single measured
network only the constant is fitted.

The whole-network regressor that corrects the table is in ``workers.latency.regressor``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces import get_space
from search_spaces.base import SearchSpace
from workers.latency.meter import LatencyMeter, cache_key, write_json_atomic
from workers.latency.profile import DeviceProfile, get_device
from workers.latency.units import Unit, covering_archs, units_of

Archs = Sequence[Mapping[str, int]]


def _shape_key(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def table_path(cache_dir: str | Path, space: SearchSpace, profile: DeviceProfile) -> Path:
    digest = cache_key(space, profile)
    return Path(cache_dir) / f"latency-{profile.name}-{space.id}-{digest}.json"


class LatencyTable:
    def __init__(
        self, space: SearchSpace, profile: DeviceProfile, meter: LatencyMeter | None = None
    ):
        self.space = space
        self.profile = profile
        self._meter = meter
        self.rows: dict[str, dict[str, float]] = {}
        # Call overhead (ms) per input shape ("1x28x28"), taken off every row of that shape.
        self.overhead_ms: dict[str, float] = {}
        self.constant_ms = 0.0
        self.scale = 1.0

    # ----- building -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        space: SearchSpace,
        device: str | DeviceProfile = "cpu",
        *,
        cache_dir: str | Path | None = None,
        meter: LatencyMeter | None = None,
        passes: int = 3,
    ) -> LatencyTable:
        """Load the cached table of (device, space) or time every unit of the space, in
        ``passes`` interleaved passes."""
        profile = get_device(device) if isinstance(device, str) else device
        meter = meter or LatencyMeter(space, profile, cache_dir=cache_dir)
        if cache_dir is not None:
            path = table_path(cache_dir, space, profile)
            if path.is_file():
                table = cls.load(path)
                table._meter = meter
                return table
        table = cls(space, profile, meter)
        table.ensure(covering_archs(space), passes=passes)
        if cache_dir is not None:
            table.save(table_path(cache_dir, space, profile))
        return table

    @property
    def meter(self) -> LatencyMeter:
        if self._meter is None:
            self._meter = LatencyMeter(self.space, self.profile)
        return self._meter

    def _time(self, units: Sequence[Unit], passes: int = 1) -> None:
        """Time ``units`` in ``passes`` passes (every unit once per pass) and store their rows;
        the call overhead of each new input shape is timed in the same passes."""
        from torch import nn

        shapes = {_shape_key(u.input_shape): u.input_shape for u in units}
        shapes = {k: v for k, v in shapes.items() if k not in self.overhead_ms}
        # Each module is built and prepared (traced and frozen for TorchScript) once, then
        # timed once per pass.
        identities = {k: self.meter.prepare_module(nn.Identity(), v) for k, v in shapes.items()}
        modules = {u.key: self.meter.prepare_module(u.build(), u.input_shape) for u in units}
        means: dict[str, list[float]] = {u.key: [] for u in units}
        calls: dict[str, list[float]] = {k: [] for k in shapes}
        for _ in range(passes):
            for k, shape in shapes.items():
                calls[k].append(self.meter.time(identities[k], shape).mean_ms)
            for u in units:
                means[u.key].append(self.meter.time(modules[u.key], u.input_shape).mean_ms)
        for k, v in calls.items():
            self.overhead_ms[k] = float(np.median(v))
        for u in units:
            t = np.asarray(means[u.key])
            self.rows[u.key] = {
                "mean_ms": float(t.mean()),
                "var_ms2": float(t.var()),
                "count": float(len(t)),
            }

    def ensure(self, archs: Any, passes: int = 1) -> int:
        """Time the units of ``archs`` that have no row yet; returns how many were timed."""
        todo: dict[str, Unit] = {}
        for a in archs:
            for u in units_of(self.space, a):
                if u.key not in self.rows:
                    todo.setdefault(u.key, u)
        if todo:
            self._time(list(todo.values()), passes)
        return len(todo)

    # ----- prediction -----------------------------------------------------------------------
    def sum_ms(self, arch: Mapping[str, int]) -> float:
        units = units_of(self.space, arch)
        missing = [u for u in units if u.key not in self.rows]
        if missing:
            self._time(missing)  # units outside the covering set: time them now, once
        total = 0.0
        for u in units:
            call = self.overhead_ms.get(_shape_key(u.input_shape), 0.0)
            total += self.rows[u.key]["mean_ms"] - call
        return total

    def predict(self, archs: Archs) -> np.ndarray:
        return np.asarray([self.scale * self.sum_ms(a) + self.constant_ms for a in archs])

    def fit_constant(self, archs: Archs, measured_ms: Sequence[float]) -> tuple[float, float]:
        """Fit ``scale`` and ``constant_ms`` to measured whole networks; returns both."""
        if len(archs) != len(measured_ms) or not archs:
            raise ValueError(
                f"fit_constant needs equal, non-empty archs and measurements; got {len(archs)} "
                f"and {len(measured_ms)}"
            )
        y = np.asarray(measured_ms, dtype=float)
        x = np.asarray([self.sum_ms(a) for a in archs])
        if len(archs) >= 2 and np.ptp(x) > 0:
            scale, const = np.polyfit(x, y, 1)
            self.scale, self.constant_ms = float(scale), float(const)
        else:
            self.scale, self.constant_ms = 1.0, float(np.median(y - x))
        return self.scale, self.constant_ms

    # ----- files ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        p = Path(path)
        doc = {
            "space": self.space.spec(),
            "profile": self.profile.__dict__,
            "constant_ms": self.constant_ms,
            "scale": self.scale,
            "rows": self.rows,
            "overhead_ms": self.overhead_ms,
        }
        write_json_atomic(p, doc, indent=1, sort_keys=True)
        return p

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        p = Path(path)
        try:
            doc = json.loads(p.read_text())
            table = cls(get_space(**doc["space"]), DeviceProfile(**doc["profile"]))
            table.constant_ms = float(doc["constant_ms"])
            table.scale = float(doc.get("scale", 1.0))
            table.rows = {k: {f: float(v) for f, v in r.items()} for k, r in doc["rows"].items()}
            table.overhead_ms = {k: float(v) for k, v in doc.get("overhead_ms", {}).items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"latency table {p} cannot be read: {exc}") from exc
        return table
