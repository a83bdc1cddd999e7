"""``make_searcher(name, space, objectives, seed=..., **options)``: the one entry point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search_spaces.base import SearchSpace
from workers.search.base import Searcher
from workers.search.bayesian import BayesianSearcher
from workers.search.evolution import EvolutionSearcher
from workers.search.linas import LinasSearcher
from workers.search.objectives import Objective
from workers.search.random_search import RandomSearcher

SEARCHERS: dict[str, type[Searcher]] = {
    "random": RandomSearcher,
    "evolution": EvolutionSearcher,
    "bayesian": BayesianSearcher,
    "linas": LinasSearcher,
}


class UnknownSearcher(ValueError):
    pass


def make_searcher(
    name: str, space: SearchSpace, objectives: Sequence[Objective], *, seed: int = 0, **options: Any
) -> Searcher:
    if name not in SEARCHERS:
        raise UnknownSearcher(f"unknown search algorithm '{name}'; known: {sorted(SEARCHERS)}")
    cls = SEARCHERS[name]
    try:
        return cls(space, objectives, seed=seed, **options)
    except TypeError as exc:
        raise UnknownSearcher(
            f"search algorithm '{name}': bad options {sorted(options)}: {exc}"
        ) from exc
