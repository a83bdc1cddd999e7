"""The ask/tell interface every searcher implements.

A searcher holds no I/O: ``ask(n)`` proposes canonical archs never proposed before, ``tell``
gives their evaluations (dicts of metric -> value), ``replay(history)`` rebuilds the state from
stored ``(arch, evaluation)`` pairs so that a resumed job continues instead of restarting.

Reproducibility: every ``ask`` draws from a generator seeded by ``(seed, number of archs seen)``,
and ``replay`` re-tells the history in chunks of ``batch_size``. So a search that asked
``batch_size`` archs at a time and was interrupted between batches continues exactly as if it had
not been interrupted. ``ask`` may return fewer than ``n`` archs only when the space has fewer
unseen archs left.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
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

Evaluation = Mapping[str, float]
History = Sequence[tuple[Mapping[str, int], Evaluation]]


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

    @abstractmethod
    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        """Up to ``n`` distinct genotypes not yet seen."""

    def _on_tell(self, genotypes: list[Genotype], evaluations: list[dict[str, float]]) -> None:
        """Update internal state with new measurements (default: nothing beyond the log)."""
        return None
