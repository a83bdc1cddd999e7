"""Uniform random search: the baseline every report compares against."""

from __future__ import annotations

import numpy as np

from search_spaces.base import Genotype
from workers.search.base import Searcher


class RandomSearcher(Searcher):
    name = "random"

    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        return self.sample_unseen(rng, n)
