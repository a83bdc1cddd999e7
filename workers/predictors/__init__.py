"""Predictors: accuracy (MLP ensemble, ridge, GP) and latency (measurement, lookup table,
regressor). All accuracy predictors share ``fit`` / ``predict`` / ``save`` / ``load``."""

from workers.predictors.base import (
    Predictor,
    PredictorError,
    load_predictor,
    make_predictor,
    predictor_kinds,
)
from workers.predictors.latency import (
    DeviceProfile,
    LatencyStats,
    get_device,
    measure_latency,
    profile_problems,
    register_device,
)
from workers.predictors.latency_meter import LatencyMeter
from workers.predictors.latency_table import LatencyRegressor, LatencyTable, calibration_report
from workers.predictors.linear import GPPredictor, RidgePredictor
from workers.predictors.mlp import MLPEnsemblePredictor
from workers.predictors.quality import quality_report
from workers.predictors.select import select_accuracy_predictor

__all__ = [
    "DeviceProfile",
    "GPPredictor",
    "LatencyMeter",
    "LatencyRegressor",
    "LatencyStats",
    "LatencyTable",
    "MLPEnsemblePredictor",
    "Predictor",
    "PredictorError",
    "RidgePredictor",
    "calibration_report",
    "get_device",
    "load_predictor",
    "make_predictor",
    "measure_latency",
    "predictor_kinds",
    "profile_problems",
    "quality_report",
    "register_device",
    "select_accuracy_predictor",
]
