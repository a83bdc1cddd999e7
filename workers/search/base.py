"""The ask/tell interface every searcher implements.

A searcher holds no I/O: ``ask(n)`` proposes canonical archs never proposed before, ``tell``
gives their evaluations (dicts of metric -> value), ``replay(history)`` rebuilds the state from
stored ``(arch, evaluation)`` pairs so that a resumed job continues instead of restarting.

Reproducibility: every ``ask`` draws from a generator seeded by ``(seed, number of archs seen)``,
and ``replay`` re-tells the history in chunks of ``batch_size``. So a search that asked
``batch_size`` archs at a time and was interrupted between batches continues exactly as if it had
not been interrupted. ``ask`` may return fewer than ``n`` archs only when the space has fewer
unseen archs left.

Constraint-first start: :meth:`Searcher.initial_population` (used by evolution, LINAS and the
Bayesian searcher for their first batch, never by random search, the baseline) holds the
smallest arch and, for every constraint whose metric has a cheap estimate (``flops`` and
``params`` from the space's analytics always; others from the ``estimates`` a caller passes, e.g.
a latency lookup table), a few archs built to lie just inside the bound; the rest is uniform. In
a space of 10^19 archs, uniform samples are almost all mid-sized and may never meet a tight bound,
so without this a constrained search can start with no feasible arch at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from search_spaces.base import Arch, Genotype, SearchSpace
from workers.search.objectives import (
    Constraint,
    Objective,
    ObjectiveError,
    all_constraints,
    objective_matrix,
    to_minimisation,
    violation,
)
from workers.search.variation import GeneCodec

Evaluation = Mapping[str, float]
History = Sequence[tuple[Mapping[str, int], Evaluation]]
#: A cheap estimate of one metric for a batch of archs (e.g. a latency lookup table).
Estimate = Callable[[Sequence[Arch]], np.ndarray]

#: Bisection steps per near-bound arch: 2^-12 of the path between two anchors is finer than
#: one gene of the 46 of the largest space here.
_BISECT_STEPS = 12


def _analytic(space: SearchSpace, fn: Callable[[SearchSpace, Arch], float]) -> Estimate:
    def values(archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray([fn(space, a) for a in archs], dtype=float)

    return values


def analytic_estimates(space: SearchSpace) -> dict[str, Estimate]:
    """An estimate for every analytic objective of the catalog (exact: MACs, parameters, ...)."""
    from nas_service.catalog import objectives

    return {name: _analytic(space, fn) for name, fn in objectives.analytic().items()}


class Searcher(ABC):
    name: str = ""

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        seed: int = 0,
        constraints: Sequence[Constraint] = (),
        batch_size: int = 50,
        estimates: Mapping[str, Estimate] | None = None,
    ):
        if not objectives:
            raise ObjectiveError("a search needs at least one objective")
        names = [o.name for o in objectives]
        if len(set(names)) != len(names):
            raise ObjectiveError(f"objectives repeat a metric: {names}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.space = space
        self.objectives = list(objectives)
        self.constraints = all_constraints(objectives, constraints)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self._seen: dict[Genotype, None] = {}  # ordered: proposed or told
        self.genotypes: list[Genotype] = []  # told, in order
        self.evaluations: list[dict[str, float]] = []
        self._told: dict[Genotype, int] = {}
        self.codec = GeneCodec(space)
        # Cheap metric estimates by name: the analytic counts, overridden by the caller's.
        self.estimates: dict[str, Estimate] = analytic_estimates(space)
        self.estimates.update(estimates or {})

    # ----- public interface -------------------------------------------------------------------
    def ask(self, n: int) -> list[Arch]:
        if n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        rng = np.random.default_rng([self.seed, len(self._seen)])
        genes = self._propose(n, rng)
        out: list[Arch] = []
        for g in genes:
            if g in self._seen:  # a bug in a subclass, never a user error
                raise AssertionError(f"{self.name} proposed genotype {g} twice")
            self._seen[g] = None
            out.append(self.space.decode(g))
        return out

    def tell(self, archs: Sequence[Mapping[str, int]], evaluations: Sequence[Evaluation]) -> None:
        if len(archs) != len(evaluations):
            raise ValueError(
                f"tell got {len(archs)} archs but {len(evaluations)} evaluations; they pair up"
            )
        genes: list[Genotype] = []
        evs: list[dict[str, float]] = []
        for a, ev in zip(archs, evaluations, strict=True):
            g = self.space.encode(a)
            if g in self._told:
                continue  # told twice (e.g. a replayed duplicate): the first value stands
            e = {k: float(v) for k, v in ev.items()}
            objective_matrix([e], self.objectives)  # clear error when a metric is missing
            self._seen.setdefault(g, None)
            self._told[g] = len(self.genotypes)
            self.genotypes.append(g)
            self.evaluations.append(e)
            genes.append(g)
            evs.append(e)
        if genes:
            self._on_tell(genes, evs)

    def replay(self, history: History) -> None:
        """Restore from stored pairs, in their stored order (see the module notes)."""
        items = list(history)
        for lo in range(0, len(items), self.batch_size):
            chunk = items[lo : lo + self.batch_size]
            self.tell([a for a, _ in chunk], [e for _, e in chunk])

    def state(self) -> dict[str, Any]:
        """Small JSON summary for progress reports."""
        return {"algorithm": self.name, "seen": len(self._seen), "told": len(self.genotypes)}

    # ----- helpers for subclasses -------------------------------------------------------------
    def minimised(self, evaluations: Sequence[Evaluation]) -> np.ndarray:
        raw = objective_matrix(evaluations, self.objectives)
        return to_minimisation(raw, [o.direction for o in self.objectives])

    def violations(self, evaluations: Sequence[Evaluation]) -> np.ndarray:
        return np.asarray([violation(e, self.constraints) for e in evaluations], dtype=float)

    def seen(self, g: Genotype) -> bool:
        return g in self._seen

    def sample_unseen(
        self, rng: np.random.Generator, n: int, taken: set[Genotype] | None = None
    ) -> list[Genotype]:
        """Up to ``n`` uniformly sampled genotypes not seen and not in ``taken``."""
        taken = set() if taken is None else taken
        out: list[Genotype] = []
        misses = 0
        while len(out) < n and misses < 200 + 20 * n:
            g = self.space.encode(self.space.sample(rng))
            if g in self._seen or g in taken:
                misses += 1
                continue
            taken.add(g)
            out.append(g)
        return out

    # ----- constraint-first start --------------------------------------------------------------
    def initial_population(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        """Up to ``n`` unseen genotypes for a first batch (see the module notes).

        On the very first ask (nothing seen or told yet): the smallest arch, then for each
        constraint with an estimate a few archs just inside its bound (``near_bound``), then
        uniform samples. Later calls (a first population spread over several asks) are uniform.
        Everything is drawn from ``rng``, so it follows the seeding rules of ``ask``.
        """
        taken: set[Genotype] = set()
        out: list[Genotype] = []
        if not self._seen:
            special = max(1, n // 2)  # at least half of the batch stays uniform
            g = self.space.encode(self.space.min_arch())
            out.append(g)
            taken.add(g)
            usable = [c for c in self.constraints if c.name in self.estimates]
            per = max(1, min(5, n // 10))
            for c in usable:
                for g in self.near_bound(c, per, rng):
                    if len(out) < special and g not in taken:
                        out.append(g)
                        taken.add(g)
        out = out[:n]
        return out + self.sample_unseen(rng, n - len(out), taken)

    def near_bound(self, c: Constraint, k: int, rng: np.random.Generator) -> list[Genotype]:
        """``k`` archs (fewer when they coincide) whose estimate just meets ``c``.

        Each starts from a uniform arch ``r`` and walks the path anchor -> ``r`` -> opposite
        anchor, where the anchor is the smallest arch for a ``<=`` bound (the largest for
        ``>=``): at position ``t`` in [0, 1] a gene holds ``r``'s value when its own uniform
        draw is below ``t`` and the anchor's otherwise; on (1, 2] it moves from ``r`` to the
        opposite anchor the same way. Bisection on ``t`` (all ``k`` paths at once, one batch
        estimate per step) keeps the last position that meets the bound, so every result meets
        it by the estimate, as close to the bound as the path allows. Nothing comes back when
        the anchor itself misses the bound (no arch can meet it) or the opposite anchor meets it
        (every arch does).
        """
        est = self.estimates[c.name]
        small, big = (
            self.space.encode(self.space.min_arch()),
            self.space.encode(self.space.max_arch()),
        )
        inside, outside = (small, big) if c.op == "<=" else (big, small)
        ends = self.codec.matrix([inside, outside])
        ok_ends = self._meets(c, est, ends)
        if not ok_ends[0] or ok_ends[1]:
            return []
        r = self.codec.matrix([self.space.encode(self.space.sample(rng)) for _ in range(k)])
        u = rng.random(r.shape)
        lo, hi = np.zeros(k), np.full(k, 2.0)
        for _ in range(_BISECT_STEPS):
            mid = (lo + hi) / 2
            meets = self._meets(c, est, self._blend(ends[0], r, ends[1], u, mid))
            lo = np.where(meets, mid, lo)
            hi = np.where(meets, hi, mid)
        return list(dict.fromkeys(self.codec.tuples(self._blend(ends[0], r, ends[1], u, lo))))

    def _blend(
        self, a: np.ndarray, r: np.ndarray, b: np.ndarray, u: np.ndarray, t: np.ndarray
    ) -> np.ndarray:
        t = t[:, None]
        first = np.where(u < t, r, a)  # a -> r for t in [0, 1]
        second = np.where(u < t - 1, b, r)  # r -> b for t in (1, 2]
        return self.codec.canonical(np.where(t <= 1, first, second))

    def _meets(self, c: Constraint, est: Estimate, genes: np.ndarray) -> np.ndarray:
        vals = np.asarray(est(self.codec.archs(genes)), dtype=float).reshape(-1)
        return np.asarray(self.violation_columns({c.name: vals}, [c]) <= 0)

    # ----- column-wise objectives (batches of predictions) -------------------------------------
    def minimised_columns(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """``(n, objectives)`` minimised values from one array per metric."""
        return np.stack([o.sign * np.asarray(cols[o.name], float) for o in self.objectives], 1)

    def violation_columns(
        self, cols: Mapping[str, np.ndarray], constraints: Sequence[Constraint] | None = None
    ) -> np.ndarray:
        """Total relative violation per row, as :meth:`Constraint.violation` computes it."""
        cons = self.constraints if constraints is None else constraints
        n = len(next(iter(cols.values()))) if cols else 0
        total = np.zeros(n)
        for c in cons:
            v = np.asarray(cols[c.name], dtype=float)
            over = v - c.value if c.op == "<=" else c.value - v
            part = np.maximum(0.0, over) / max(abs(c.value), 1e-12)
            total = total + np.where(np.isnan(v), np.inf, part)
        return total

    @abstractmethod
    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        """Up to ``n`` distinct genotypes not yet seen."""

    def _on_tell(self, genotypes: list[Genotype], evaluations: list[dict[str, float]]) -> None:
        """Update internal state with new measurements (default: nothing beyond the log)."""
        return None
