"""Uniform random search: the baseline every report compares against.

It stays purely uniform on purpose: no constraint-first start (``estimates`` are accepted, as
every searcher accepts them, and ignored), so the other searchers' gains are measured against
plain sampling with the same budget.
"""

from __future__ import annotations

import numpy as np

from search_spaces.base import Genotype
from workers.search.base import Searcher


class RandomSearcher(Searcher):
    name = "random"

    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        return self.sample_unseen(rng, n)
