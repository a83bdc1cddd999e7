"""Training presets and subnet samplers of a job's ``training`` section."""

from __future__ import annotations

from typing import Any

from nas_service.catalog.registry import CATALOG, Entry

PRESET = "training_preset"
SAMPLER = "sampler"

ENTRIES = [
    Entry(
        PRESET, "tiny", "a quarter of the default schedule: minutes on a CPU", info={"scale": 0.25}
    ),
    Entry(PRESET, "small", "half of the default schedule", info={"scale": 0.5}),
    Entry(
        PRESET,
        "default",
        "the default schedule for the space and dataset size",
        info={"scale": 1.0},
    ),
    Entry(
        SAMPLER,
        "uniform",
        "each elastic dimension uniformly (the sandwich ends are trained every step)",
        info={"policies": {"best-of-k": {"best_of": 3}}},
    ),
    Entry(
        SAMPLER,
        "complexity-aware",
        "a target complexity bin per step (quantiles of the space's FLOPs), then a fresh arch in "
        "that bin (AttentiveNAS); policies: bins drawn uniformly, a walk to neighbouring bins "
        "(ElasticViT), bins weighted by how much fixed probe archs still improve, best of 3",
        info={
            # training.sampler_policy -> the trainer's sampler settings it sets.
            "policies": {
                "uniform-bins": {"policy": "uniform"},
                "neighbour-bins": {"policy": "walk"},
                "adaptive-bins": {"policy": "adaptive"},
                "best-of-k": {"best_of": 3},
            }
        },
    ),
]


def preset_names() -> list[str]:
    return CATALOG.names(PRESET)


def preset_scale(name: str) -> float:
    return float(CATALOG.get(PRESET, name).info["scale"])


def sampler_names() -> list[str]:
    return CATALOG.names(SAMPLER)


def sampler_policies(name: str) -> list[str]:
    return list(CATALOG.get(SAMPLER, name).info["policies"])


def policy_settings(sampler: str, policy: str) -> dict[str, Any]:
    """The trainer's sampler settings a job's ``sampler_policy`` stands for."""
    return dict(CATALOG.get(SAMPLER, sampler).info["policies"][policy])


def all_policies() -> list[str]:
    return sorted({p for e in CATALOG.entries(SAMPLER) for p in e.info["policies"]})
