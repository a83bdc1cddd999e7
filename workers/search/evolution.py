"""NSGA-II evolutionary search over genotypes (see ``nsga2`` and ``variation`` for the operators).

The first ``population`` archs are the constraint-first start of
:meth:`~workers.search.base.Searcher.initial_population` (smallest arch, archs just inside each
estimable bound, the rest uniform). Afterwards each ``ask`` breeds offspring of the current
population: binary tournaments on constraint-domination rank and crowding distance, uniform
crossover with a partner within ``mating_radius`` genes (restricted mating, see
:class:`~workers.search.variation.GeneticConfig`), discrete mutation of about
``mutation_rate`` active genes per child, canonicalisation; a child that repeats a seen arch is
mutated again. Each ``tell`` keeps the best ``population`` of parents and offspring (feasible
before infeasible, infeasible by violation).
Random archs fill a batch only when the population has converged so far that varying it yields
nothing new; ``state()["random_fill"]`` counts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from search_spaces.base import Genotype, SearchSpace
from workers.search.base import Estimate, Searcher
from workers.search.nsga2 import rank_and_crowd, survivors
from workers.search.objectives import Constraint, Objective
from workers.search.variation import GeneticConfig, breed


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
        mutation_rate: float = 1.0,
        mating_radius: int | None = 6,
        estimates: Mapping[str, Estimate] | None = None,
    ):
        if population < 2:
            raise ValueError(f"population must be >= 2, got {population}")
        super().__init__(
            space,
            objectives,
            seed=seed,
            constraints=constraints,
            batch_size=batch_size or population,
            estimates=estimates,
        )
        self.population = population
        self.cfg = GeneticConfig(
            crossover_prob=crossover_prob, mutation_rate=mutation_rate, mating_radius=mating_radius
        )
        self._pop: list[int] = []  # indices into self.genotypes / self.evaluations
        self.random_fill = 0  # archs this process filled in at random (converged population)

    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        if len(self._pop) < self.population:
            return self.initial_population(n, rng)
        evs = [self.evaluations[i] for i in self._pop]
        ranks, crowd = rank_and_crowd(self.minimised(evs), self.violations(evs))
        genes = self.codec.matrix([self.genotypes[i] for i in self._pop])

        def seen(rows: np.ndarray, keys: list[bytes]) -> np.ndarray:
            return np.fromiter(
                (self.seen(g) for g in self.codec.tuples(rows)), dtype=bool, count=len(rows)
            )

        kids = self.codec.tuples(breed(rng, self.codec, genes, ranks, crowd, n, self.cfg, seen))
        if len(kids) < n:
            # Last resort: the population has converged so far that re-mutating duplicates
            # found nothing new within cfg.max_rounds genes; only then do random archs enter.
            fill = self.sample_unseen(rng, n - len(kids), set(kids))
            self.random_fill += len(fill)
            kids += fill
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
        s["random_fill"] = self.random_fill
        return s
