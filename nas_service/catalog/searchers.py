"""Search algorithms (``search.algorithm``) and their options (``search.options``).

The options models are the searchers' keyword arguments as a user may give them; the workers'
factory (``workers.search.make_searcher``) validates with the same model, so an option the API
accepted is one the searcher takes. ``batch_size``, ``population`` (for evolution) and the
job's constraints come from the rest of the spec, not from ``search.options``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nas_service.catalog.registry import CATALOG, Entry

KIND = "searcher"


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RandomOptions(_Options):
    """Uniform samples of the space: the baseline every searcher is compared with."""


class EvolutionOptions(_Options):
    population: int | None = Field(default=None, ge=2, le=10_000, description="NSGA-II population")
    crossover_prob: float | None = Field(
        default=None, ge=0, le=1, description="chance that a pair of parents exchanges genes"
    )
    mutation_rate: float | None = Field(
        default=None, gt=0, le=16, description="expected active genes changed per child"
    )
    mating_radius: int | None = Field(
        default=None, ge=1, description="parents differ in at most this many genes (None: any)"
    )


class BayesianOptions(_Options):
    sampler: Literal["tpe", "gp"] | None = Field(default=None, description="optuna sampler")
    n_startup_trials: int | None = Field(
        default=None, ge=1, le=10_000, description="random trials before the model is used"
    )


class LinasOptions(_Options):
    n_init: int | None = Field(default=None, ge=1, description="random archs measured first")
    evaluations: int | None = Field(
        default=None, ge=10, le=1_000_000, description="predictor evaluations per batch"
    )
    population: int | None = Field(default=None, ge=2, le=10_000, description="inner population")
    predictor: Literal["ridge", "gp", "mlp"] | None = Field(
        default=None, description="accuracy predictor of the inner search"
    )
    crossover_prob: float | None = Field(default=None, ge=0, le=1)
    mutation_rate: float | None = Field(default=None, gt=0, le=16)
    trust_radius: int | None = Field(
        default=None, ge=1, description="proposals stay within this many genes of a measured arch"
    )


ENTRIES = [
    Entry(
        KIND,
        "random",
        "uniform random search (the baseline)",
        RandomOptions,
        "workers.search.random_search:RandomSearcher",
    ),
    Entry(
        KIND,
        "evolution",
        "NSGA-II with discrete crossover and mutation, constraint-first start and survival",
        EvolutionOptions,
        "workers.search.evolution:EvolutionSearcher",
    ),
    Entry(
        KIND,
        "bayesian",
        "optuna multi-objective TPE or GP sampler (ordered dims as integers)",
        BayesianOptions,
        "workers.search.bayesian:BayesianSearcher",
    ),
    Entry(
        KIND,
        "linas",
        "LINAS: predictor-in-the-loop NSGA-II (thousands of predictor evaluations per batch)",
        LinasOptions,
        "workers.search.linas:LinasSearcher",
    ),
]


def names() -> list[str]:
    return CATALOG.names(KIND)
