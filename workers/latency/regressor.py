"""The whole-network latency regressor: a predictor (``workers.predictors`` registry kind
``latency_ridge``) over how often each unit key of the lookup table occurs in the network.

It learns whole-network latency from measured archs: ridge on the unit counts (plus MACs and
parameters), i.e. a lookup table learned from whole-network timings, which includes the
in-network effects that timing units alone misses. ``calibration_report`` scores any latency
prediction against measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces.base import SearchSpace
from workers.latency.table import LatencyTable
from workers.latency.units import covering_archs, units_of
from workers.predictors.base import PredictorError, register
from workers.predictors.linear import RidgePredictor
from workers.predictors.quality import quality_report

Archs = Sequence[Mapping[str, int]]


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
    """Whole-network latency (ms), fitted on measured archs: ridge on unit counts (plus MACs and
    parameters). Given a lookup ``table``, the table's sum is fitted to the same archs first
    (``scale * sum + constant``, least squares) and the ridge learns only what the table gets
    wrong: the table carries the additive part, timed with many runs per row, and the few
    hundred noisy whole-network timings go into corrections instead of into every unit's cost.
    A table-backed regressor is not saved: its table is (``LatencyTable.save``)."""

    kind = "latency_ridge"

    def __init__(self, space: SearchSpace, table: LatencyTable | None = None, **kw: Any):
        kw.setdefault("target", "identity")  # milliseconds, even when all below 1
        super().__init__(space, **kw)
        self.featurize = UnitCounts(space)  # type: ignore[assignment]
        self.table = table
        self.base = (0.0, 0.0)  # (scale, constant) on the table's sum

    def _base(self, archs: Archs) -> np.ndarray:
        if self.table is None:
            return np.zeros(len(archs))
        sums = np.asarray([self.table.sum_ms(a) for a in archs])
        return self.base[0] * sums + self.base[1]

    def fit(self, archs: Archs, y: Sequence[float] | np.ndarray) -> LatencyRegressor:
        t = np.asarray(y, dtype=float).reshape(-1)
        if self.table is not None and len(archs) == t.size and t.size >= 2:
            sums = np.asarray([self.table.sum_ms(a) for a in archs])
            design = np.c_[sums, np.ones_like(sums)]
            scale, const = np.linalg.lstsq(design, t, rcond=None)[0]
            self.base = (float(scale), float(const))
            t = t - (self.base[0] * sums + self.base[1])
        super().fit(archs, t)
        return self

    def predict(
        self, archs: Archs, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        out = super().predict(archs, return_std)
        base = self._base(archs)
        if isinstance(out, tuple):
            return out[0] + base, out[1]
        return out + base

    def save(self, path: str | Path) -> Path:
        if self.table is not None:
            raise PredictorError(
                "a table-backed latency regressor is not saved; save its table and refit"
            )
        return super().save(path)


def calibration_report(
    predicted_ms: Sequence[float] | np.ndarray, measured_ms: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Share of archs within +-10% of measured, Kendall tau, MAPE (and MAE, Spearman)."""
    return quality_report(measured_ms, predicted_ms)
