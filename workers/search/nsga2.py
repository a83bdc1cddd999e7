"""NSGA-II building blocks on integer genotypes.

Genes are option indices. Selection is by binary tournaments on constraint-domination rank
(feasible archs by Pareto fronts first, infeasible ones behind them by total violation; see
:func:`workers.search.pareto.constrained_ranks`) and crowding distance; variation is the discrete
uniform crossover and mutation of :mod:`workers.search.variation`; survival keeps the best of
parents and children by the same rank and crowding. Offspring are canonicalised (inactive genes
reset), which is what makes duplicate elimination exact.

:func:`run_nsga2` is the predictor-only inner loop of LINAS: it works on genotype matrices end to
end, so the cost per evaluation is that of ``evaluate`` plus a few array operations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from search_spaces.base import Genotype, SearchSpace
from workers.search.pareto import constrained_ranks, crowding_distance
from workers.search.variation import GeneCodec, GeneticConfig, breed, offspring, tournament

__all__ = [
    "GeneticConfig",
    "offspring",
    "rank_and_crowd",
    "run_nsga2",
    "survivors",
    "tournament",
]


def rank_and_crowd(f_min: np.ndarray, violations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ranks = constrained_ranks(f_min, violations)
    crowd = np.zeros(len(ranks))
    for r in np.unique(ranks):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = crowding_distance(f_min[idx])
    return ranks, crowd


def survivors(f_min: np.ndarray, violations: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best by constraint-domination rank, then crowding (stable)."""
    ranks, crowd = rank_and_crowd(f_min, violations)
    order = np.lexsort((np.arange(len(ranks)), -crowd, ranks))
    return order[:k]


Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def run_nsga2(
    space: SearchSpace,
    rng: np.random.Generator,
    evaluate: Evaluate,
    initial: Sequence[Genotype] | np.ndarray,
    *,
    population: int,
    evaluations: int,
    cfg: GeneticConfig,
    codec: GeneCodec | None = None,
) -> tuple[list[Genotype], np.ndarray, np.ndarray]:
    """A plain NSGA-II on a cheap ``evaluate`` (minimised objectives, violations).

    ``evaluate`` gets an ``(n, genes)`` matrix of canonical genotypes, each row new to this run
    (so every call is a batch of distinct archs, at most ``evaluations`` rows in all, initial
    ones included). Returns the final population's genotypes, objectives and violations, best
    first.
    """
    codec = codec or GeneCodec(space)
    pop = codec.canonical(codec.matrix(initial))
    keys = codec.keys(pop)
    first: dict[bytes, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    uniq = sorted(first.values())  # repeats of the initial archs dropped, order kept
    pop = pop[uniq]
    archive = {keys[i] for i in uniq}
    if pop.shape[0] == 0:
        return [], np.zeros((0, 0)), np.zeros(0)
    f, v = evaluate(pop)
    used = len(pop)
    keep = survivors(f, v, population)
    pop, f, v = pop[keep], f[keep], v[keep]

    def archived(rows: np.ndarray, rk: list[bytes]) -> np.ndarray:
        return np.fromiter((k in archive for k in rk), dtype=bool, count=len(rk))

    while used < evaluations:
        ranks, crowd = rank_and_crowd(f, v)
        want = min(population, evaluations - used)
        kids = breed(rng, codec, pop, ranks, crowd, want, cfg, archived)
        if not len(kids):
            break  # the neighbourhood of this population is exhausted
        archive.update(codec.keys(kids))
        fk, vk = evaluate(kids)
        used += len(kids)
        allg = np.concatenate([pop, kids])
        fa, va = np.concatenate([f, fk]), np.concatenate([v, vk])
        keep = survivors(fa, va, population)
        pop, f, v = allg[keep], fa[keep], va[keep]
    return codec.tuples(pop), f, v
