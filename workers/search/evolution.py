"""NSGA-II evolutionary search over genotypes (see ``nsga2`` for the operators).

The first ``population`` archs are uniform samples; afterwards each ``ask`` breeds offspring of
the current population (binary tournaments on constraint-domination rank and crowding distance,
SBX crossover, polynomial mutation, rounding, canonicalisation, duplicates dropped) and each
``tell`` keeps the best ``population`` of parents and offspring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from search_spaces.base import Genotype, SearchSpace
from workers.search.base import Searcher
from workers.search.nsga2 import GeneticConfig, offspring, rank_and_crowd, survivors
from workers.search.objectives import Constraint, Objective


class EvolutionSearcher(Searcher):
    name = "evolution"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        seed: int = 0,
        constraints: Sequence[Constraint] = (),
        population: int = 50,
        batch_size: int | None = None,
        crossover_prob: float = 0.9,
        crossover_eta: float = 15.0,
        mutation_eta: float = 20.0,
        mutation_prob: float | None = None,
    ):
        if population < 2:
            raise ValueError(f"population must be >= 2, got {population}")
        super().__init__(
            space,
            objectives,
            seed=seed,
            constraints=constraints,
            batch_size=batch_size or population,
        )
        self.population = population
        self.cfg = GeneticConfig(crossover_prob, crossover_eta, mutation_eta, mutation_prob)
        self._pop: list[int] = []  # indices into self.genotypes / self.evaluations

    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        if len(self._pop) < self.population:
            return self.sample_unseen(rng, n)
        evs = [self.evaluations[i] for i in self._pop]
        ranks, crowd = rank_and_crowd(self.minimised(evs), self.violations(evs))
        genes = np.asarray([self.genotypes[i] for i in self._pop])
        kids = offspring(rng, self.space, genes, ranks, crowd, n, self.seen, self.cfg)
        if len(kids) < n:  # the population has converged: fill with fresh samples
            kids += self.sample_unseen(rng, n - len(kids), set(kids))
        return kids

    def _on_tell(self, genotypes: list[Genotype], evaluations: list[dict[str, float]]) -> None:
        start = len(self.genotypes) - len(genotypes)
        pool = self._pop + list(range(start, len(self.genotypes)))
        evs = [self.evaluations[i] for i in pool]
        keep = survivors(self.minimised(evs), self.violations(evs), self.population)
        self._pop = [pool[i] for i in keep]

    def state(self) -> dict[str, Any]:
        s = super().state()
        s["generation"] = max(0, (len(self.genotypes) - self.population) // self.batch_size + 1)
        return s
