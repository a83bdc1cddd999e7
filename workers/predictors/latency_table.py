"""Per-operation latency lookup table and the whole-network latency regressor.

The table times every distinct unit of the space (``latency_units``) once on the device and
stores mean, variance and count per key; it is cached as JSON per (device profile, space spec)
so it is built once. A network's latency is ``scale * sum of its units' rows + constant``, both
fitted by least squares on a few measured whole networks. The constant covers framework overhead
between units; the scale covers what timing a unit alone misses: run in a loop, a unit keeps its
weights in cache, inside a network it does not (on this project's CPU the whole network took
1.5-2x the sum of its rows). With a single measured network only the constant is fitted.

The regressor learns whole-network latency from measured archs: ridge on how often each unit
key occurs in the network (plus MACs and parameters), i.e. a lookup table learned from
whole-network timings, which includes the in-network effects that timing units alone misses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces import get_space
from search_spaces.base import SearchSpace
from workers.predictors.base import register
from workers.predictors.latency import DeviceProfile, get_device
from workers.predictors.latency_meter import LatencyMeter, cache_key, write_json_atomic
from workers.predictors.latency_units import Unit, covering_archs, units_of
from workers.predictors.linear import RidgePredictor
from workers.predictors.quality import quality_report

Archs = Sequence[Mapping[str, int]]


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
    ) -> LatencyTable:
        """Load the cached table of (device, space) or time every unit of the space."""
        profile = get_device(device) if isinstance(device, str) else device
        meter = meter or LatencyMeter(space, profile, cache_dir=cache_dir)
        if cache_dir is not None:
            path = table_path(cache_dir, space, profile)
            if path.is_file():
                table = cls.load(path)
                table._meter = meter
                return table
        table = cls(space, profile, meter)
        table.ensure(covering_archs(space))
        if cache_dir is not None:
            table.save(table_path(cache_dir, space, profile))
        return table

    @property
    def meter(self) -> LatencyMeter:
        if self._meter is None:
            self._meter = LatencyMeter(self.space, self.profile)
        return self._meter

    def _time(self, unit: Unit) -> None:
        stats = self.meter.time(unit.build(), unit.input_shape)
        self.rows[unit.key] = {
            "mean_ms": stats.mean_ms,
            "var_ms2": stats.std_ms**2,
            "count": float(stats.repeats),
        }

    def ensure(self, archs: Any) -> int:
        """Time the units of ``archs`` that have no row yet; returns how many were timed."""
        timed = 0
        for a in archs:
            for u in units_of(self.space, a):
                if u.key not in self.rows:
                    self._time(u)
                    timed += 1
        return timed

    # ----- prediction -----------------------------------------------------------------------
    def sum_ms(self, arch: Mapping[str, int]) -> float:
        total = 0.0
        for u in units_of(self.space, arch):
            if u.key not in self.rows:
                self._time(u)  # a unit outside the covering set: time it now, once
            total += self.rows[u.key]["mean_ms"]
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
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"latency table {p} cannot be read: {exc}") from exc
        return table


class UnitCounts:
    """Features: count of each unit key of the space in the arch, then MACs and params scaled
    by the largest arch's."""

    def __init__(self, space: SearchSpace):
        self.space = space
        keys = {u.key for a in covering_archs(space) for u in units_of(space, a)}
        self.index = {k: i for i, k in enumerate(sorted(keys))}
        big = space.max_arch()
        self._flops = float(max(1, space.flops(big)))
        self._params = float(max(1, space.params(big)))

    def dim(self) -> int:
        return len(self.index) + 2

    def __call__(self, archs: Archs) -> np.ndarray:
        out = np.zeros((len(archs), self.dim()))
        for r, a in enumerate(archs):
            for u in units_of(self.space, a):
                i = self.index.get(u.key)
                if i is not None:
                    out[r, i] += 1.0
            out[r, -2] = self.space.flops(a) / self._flops
            out[r, -1] = self.space.params(a) / self._params
        return out


@register
class LatencyRegressor(RidgePredictor):
    """Whole-network latency (ms) from unit counts, fitted on measured archs."""

    kind = "latency_ridge"

    def __init__(self, space: SearchSpace, **kw: Any):
        kw.setdefault("target", "identity")  # milliseconds, even when all below 1
        super().__init__(space, **kw)
        self.featurize = UnitCounts(space)  # type: ignore[assignment]


def calibration_report(
    predicted_ms: Sequence[float] | np.ndarray, measured_ms: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Share of archs within +-10% of measured, Kendall tau, MAPE (and MAE, Spearman)."""
    return quality_report(measured_ms, predicted_ms)
