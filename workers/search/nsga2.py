"""NSGA-II building blocks on integer genotypes.

Genes are option indices. Crossover (SBX) and mutation (polynomial) act on a continuous relaxation
where gene ``g`` with ``c`` choices lives in ``[-0.5, c - 0.5]``; rounding maps every choice to a
bin of equal width, so each option stays reachable. Offspring are then canonicalised by the
space (inactive genes reset), which is what makes duplicate elimination exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from search_spaces.base import Genotype, SearchSpace
from workers.search.pareto import constrained_ranks, crowding_distance


@dataclass(frozen=True)
class GeneticConfig:
    crossover_prob: float = 0.9
    crossover_eta: float = 15.0
    mutation_eta: float = 20.0
    # Per-gene mutation probability; None means 1 / number of genes (at least 0.02).
    mutation_prob: float | None = None


def sbx(
    rng: np.random.Generator, p1: np.ndarray, p2: np.ndarray, hi: np.ndarray, cfg: GeneticConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated binary crossover of parent rows ``p1``, ``p2`` (floats), clipped to bounds."""
    k, d = p1.shape
    u = rng.random((k, d))
    e = 1.0 / (cfg.crossover_eta + 1.0)
    beta = np.where(u <= 0.5, (2 * u) ** e, (1.0 / (2 * (1 - u) + 1e-12)) ** e)
    swap_gene = rng.random((k, d)) < 0.5  # each gene crosses with probability 1/2
    do_pair = np.less(rng.random(k), cfg.crossover_prob)[:, None]
    beta = np.where(swap_gene & do_pair, beta, 1.0)
    c1 = 0.5 * ((1 + beta) * p1 + (1 - beta) * p2)
    c2 = 0.5 * ((1 - beta) * p1 + (1 + beta) * p2)
    lo = -0.5
    return np.clip(c1, lo, hi), np.clip(c2, lo, hi)


def polynomial_mutation(
    rng: np.random.Generator, x: np.ndarray, hi: np.ndarray, cfg: GeneticConfig
) -> np.ndarray:
    k, d = x.shape
    prob = cfg.mutation_prob if cfg.mutation_prob is not None else max(0.02, 1.0 / d)
    u = rng.random((k, d))
    e = 1.0 / (cfg.mutation_eta + 1.0)
    delta = np.where(u < 0.5, (2 * u) ** e - 1.0, 1.0 - (2 * (1 - u)) ** e)
    mask = rng.random((k, d)) < prob
    span = hi + 0.5
    return np.clip(np.where(mask, x + delta * span, x), -0.5, hi)


def tournament(
    rng: np.random.Generator, ranks: np.ndarray, crowd: np.ndarray, k: int
) -> np.ndarray:
    """Indices of ``k`` binary-tournament winners (lower rank, then larger crowding)."""
    n = ranks.shape[0]
    a = rng.integers(0, n, size=k)
    b = rng.integers(0, n, size=k)
    better_b = (ranks[b] < ranks[a]) | ((ranks[b] == ranks[a]) & (crowd[b] > crowd[a]))
    return np.where(better_b, b, a)


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


def offspring(
    rng: np.random.Generator,
    space: SearchSpace,
    genes: np.ndarray,
    ranks: np.ndarray,
    crowd: np.ndarray,
    n: int,
    exclude: Callable[[Genotype], bool],
    cfg: GeneticConfig,
    max_rounds: int = 20,
) -> list[Genotype]:
    """Up to ``n`` new canonical genotypes, none excluded and none repeated."""
    hi = np.asarray(space.cardinalities(), dtype=float) - 0.5
    out: list[Genotype] = []
    batch: set[Genotype] = set()
    for _ in range(max_rounds):
        need = n - len(out)
        if need <= 0:
            break
        pairs = (need + 1) // 2 + 2
        i1 = tournament(rng, ranks, crowd, pairs)
        i2 = tournament(rng, ranks, crowd, pairs)
        c1, c2 = sbx(rng, genes[i1].astype(float), genes[i2].astype(float), hi, cfg)
        kids = polynomial_mutation(rng, np.concatenate([c1, c2]), hi, cfg)
        top = np.asarray(space.cardinalities()) - 1
        for row in np.clip(np.rint(kids).astype(int), 0, top):
            g = space.encode(space.decode(tuple(int(v) for v in row)))
            if g in batch or exclude(g):
                continue
            batch.add(g)
            out.append(g)
            if len(out) == n:
                break
    return out


def run_nsga2(
    space: SearchSpace,
    rng: np.random.Generator,
    evaluate: Callable[[Sequence[Genotype]], tuple[np.ndarray, np.ndarray]],
    initial: Sequence[Genotype],
    *,
    population: int,
    evaluations: int,
    cfg: GeneticConfig,
) -> tuple[list[Genotype], np.ndarray, np.ndarray]:
    """A plain NSGA-II on a cheap ``evaluate`` (minimised objectives, violations).

    Returns the final population's genotypes, objectives and violations, best first.
    """
    pop = list(dict.fromkeys(initial))
    f, v = evaluate(pop)
    keep = survivors(f, v, population)
    pop, f, v = [pop[i] for i in keep], f[keep], v[keep]
    archive = set(pop)
    used = len(pop)
    while used < evaluations:
        ranks, crowd = rank_and_crowd(f, v)
        kids = offspring(
            rng, space, np.asarray(pop), ranks, crowd, population, archive.__contains__, cfg
        )
        if not kids:
            break
        archive.update(kids)
        fk, vk = evaluate(kids)
        used += len(kids)
        allg = pop + kids
        fa, va = np.concatenate([f, fk]), np.concatenate([v, vk])
        keep = survivors(fa, va, population)
        pop, f, v = [allg[i] for i in keep], fa[keep], va[keep]
    return pop, f, v
