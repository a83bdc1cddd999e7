"""Latency on a target device: profiles and timing (``profile``), the per-(space, device) meter
with its speed reference (``meter``), the units a network splits into (``units``), the
per-unit lookup table (``table``) and the whole-network regressor (``regressor``, a predictor
of the ``workers.predictors`` registry)."""

from workers.latency.meter import LatencyMeter
from workers.latency.profile import (
    DeviceProfile,
    LatencyStats,
    get_device,
    measure_latency,
    profile_problems,
    register_device,
)
from workers.latency.regressor import LatencyRegressor, calibration_report
from workers.latency.table import LatencyTable, table_path

__all__ = [
    "DeviceProfile",
    "LatencyMeter",
    "LatencyRegressor",
    "LatencyStats",
    "LatencyTable",
    "calibration_report",
    "get_device",
    "measure_latency",
    "profile_problems",
    "register_device",
    "table_path",
]
