"""Supernet training: progressive shrinking, sandwich rule, samplers, checkpoints, CLI."""

from workers.training.checkpoint import load_checkpoint
from workers.training.config import HealthConfig, PhaseConfig, TrainConfig, default_config
from workers.training.extract import bn_calibration_images, recalibrated_extract
from workers.training.loop import TrainingCancelled, TrainingDiverged, TrainResult, train_supernet
from workers.training.samplers import (
    ComplexityAwareSampler,
    SamplerConfig,
    SubnetSampler,
    UniformSampler,
    make_sampler,
)

__all__ = [
    "ComplexityAwareSampler",
    "HealthConfig",
    "PhaseConfig",
    "SamplerConfig",
    "SubnetSampler",
    "TrainConfig",
    "TrainResult",
    "TrainingCancelled",
    "TrainingDiverged",
    "UniformSampler",
    "bn_calibration_images",
    "default_config",
    "load_checkpoint",
    "make_sampler",
    "recalibrated_extract",
    "train_supernet",
]
