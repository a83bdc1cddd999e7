"""Accuracy predictors (MLP ensemble, ridge, GP) and their registry. All share ``fit`` /
``predict`` / ``save`` / ``load``. Latency (measurement, lookup table, the whole-network
regressor, which registers here as ``latency_ridge``) is ``workers.latency``."""

from workers.predictors.base import (
    Predictor,
    PredictorError,
    load_predictor,
    make_predictor,
    predictor_kinds,
)
from workers.predictors.linear import GPPredictor, RidgePredictor
from workers.predictors.mlp import MLPEnsemblePredictor
from workers.predictors.quality import quality_report
from workers.predictors.select import select_accuracy_predictor

__all__ = [
    "GPPredictor",
    "MLPEnsemblePredictor",
    "Predictor",
    "PredictorError",
    "RidgePredictor",
    "load_predictor",
    "make_predictor",
    "predictor_kinds",
    "quality_report",
    "select_accuracy_predictor",
]
