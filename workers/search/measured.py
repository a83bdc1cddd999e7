"""Wiring a search to a trained supernet: real evaluations and real re-measurement (torch).

``SupernetObjectives`` answers every metric a search may ask for:
- ``accuracy`` / ``loss``: the evaluator (BN recalibrated, validation split, cached);
- ``latency_ms``: predicted by a lookup table (fitted constant and scale) or a regressor, or
  timed on the device when ``latency="measured"``;
- ``flops`` / ``params`` and any other analytic objective of the catalog: computed exactly.
``measure`` is the real thing for re-measurement: evaluator accuracy and timed latency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from search_spaces.base import Arch
from search_spaces.nn import Supernet
from workers.data.base import DatasetSplits
from workers.evaluation import SubnetEvaluator
from workers.latency.meter import LatencyMeter
from workers.latency.profile import DeviceProfile, get_device
from workers.latency.regressor import LatencyRegressor
from workers.latency.table import LatencyTable

LATENCY_MODES = ("lut", "regressor", "measured")


class SupernetObjectives:
    def __init__(
        self,
        net: Supernet,
        data: DatasetSplits,
        *,
        metrics: Sequence[str],
        device: str | DeviceProfile = "cpu",
        latency: str = "lut",
        cache_dir: str | Path | None = None,
        calibration_archs: int = 8,
        seed: int = 0,
        evaluator: SubnetEvaluator | None = None,
    ):
        if latency not in LATENCY_MODES:
            raise ValueError(f"latency mode {latency!r} is not known; use one of {LATENCY_MODES}")
        self.net = net
        self.space = net.space
        self.metrics = list(dict.fromkeys(metrics))
        from nas_service.catalog import objectives

        self.analytic = objectives.analytic()
        self.profile = get_device(device) if isinstance(device, str) else device
        self.latency_mode = latency
        self.meter = LatencyMeter(self.space, self.profile, cache_dir=cache_dir)
        self.evaluator = evaluator or SubnetEvaluator(net, data, seed=seed)
        self.table: LatencyTable | None = None
        self.regressor: LatencyRegressor | None = None
        self._timed: dict[tuple[int, ...], float] = {}
        if "latency_ms" in self.metrics and latency != "measured":
            self._fit_latency(cache_dir, calibration_archs, seed)

    def _fit_latency(self, cache_dir: str | Path | None, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        calib = [self.space.min_arch(), self.space.max_arch()]
        calib += [self.space.sample(rng) for _ in range(max(0, n - 2))]
        timed = self.time_latency(calib)
        if self.latency_mode == "lut":
            self.table = LatencyTable.build(
                self.space, self.profile, cache_dir=cache_dir, meter=self.meter
            )
            self.table.fit_constant(calib, timed)
        else:
            self.regressor = LatencyRegressor(self.space, seed=seed)
            self.regressor.fit(calib, timed)

    def time_latency(self, archs: Sequence[Mapping[str, int]]) -> list[float]:
        """Timed latency (ms) of each arch's extracted subnet on the device profile."""
        out = []
        for a in archs:
            g = self.space.encode(a)
            if g not in self._timed:
                self._timed[g] = self.meter.time_arch(a, self.net.extract(a)).mean_ms
            out.append(self._timed[g])
        return out

    def predict_latency(self, archs: Sequence[Mapping[str, int]]) -> list[float]:
        if self.table is not None:
            return [float(v) for v in self.table.predict(archs)]
        if self.regressor is not None:
            return [float(v) for v in np.asarray(self.regressor.predict(archs))]
        return self.time_latency(archs)

    def evaluate(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """What the search sees: real accuracy, predicted (or timed) latency, analytics."""
        return self._collect(archs, self.predict_latency)

    def measure(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """Everything measured for real (re-measurement of the final front)."""
        return self._collect(archs, self.time_latency)

    def _collect(self, archs: Sequence[Arch], latency_fn: object) -> list[dict[str, float]]:
        out: list[dict[str, float]] = [{} for _ in archs]
        if {"accuracy", "loss"} & set(self.metrics):
            for o, r in zip(out, self.evaluator.evaluate(archs), strict=True):
                o.update(r)
        if "latency_ms" in self.metrics:
            assert callable(latency_fn)
            for o, v in zip(out, latency_fn(archs), strict=True):
                o["latency_ms"] = float(v)
        for o, a in zip(out, archs, strict=True):
            for name, fn in self.analytic.items():
                o[name] = float(fn(self.space, a))
        return out
