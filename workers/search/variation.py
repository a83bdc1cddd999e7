"""Variation operators for discrete genotypes, vectorised over a whole batch.

Genes are option indices (``space.encode``); a batch is an ``(n, genes)`` integer matrix. The
operators are the ones that work on genes with a handful of choices (see the team's notes,
"Search"): a continuous relaxation (SBX, polynomial mutation, rounding) hardly ever moves a
3-choice gene, so children copied their parents and most of every batch had to be filled with
random archs. Here instead:

- :func:`uniform_crossover`: a pair is crossed with probability ``crossover_prob``; then each gene
  is exchanged between the two children with probability ``swap_prob`` (0.5).
- :func:`mutate`: each child replaces about ``mutation_rate`` of its *active* genes (expected
  count) by another of their values; genes the arch does not use never count, so the rate means
  the same for a shallow and a deep arch.
- :class:`GeneCodec`: canonicalisation (inactive genes back to index 0), active masks and
  hashable row keys without decoding each row into a dict.
- :func:`breed`: tournaments, crossover, mutation, canonicalisation; a child that repeats an arch
  of the batch or an excluded one (already seen) is mutated again, one more gene at a time, so
  duplicates are resolved by varying, not by random archs. Only a population that has truly
  converged (its neighbourhood exhausted after ``max_rounds``) leaves a shortfall, which the
  caller may then fill with random archs as a last resort.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from search_spaces.base import Arch, Genotype, SearchSpace


@dataclass(frozen=True)
class GeneticConfig:
    """Settings of the discrete genetic operators.

    crossover_prob: probability that a parent pair is crossed at all (else both children start as
        copies of their parents and only mutation varies them).
    swap_prob: per-gene probability that a crossed pair exchanges the gene (uniform crossover).
    mutation_rate: expected number of *active* genes a child changes (each to another of its
        values); 1.0 is about one gene per child.
    max_rounds: how many times a duplicate child is re-mutated (one more gene each time) before
        it is given up; only a converged population exhausts this.
    mating_radius: the second parent of a pair is a tournament winner among the population
        members within this many (canonical) genes of the first; a first parent without such a
        neighbour is not crossed. ``None`` pairs any two tournament winners (classic NSGA-II).
        Why: two uniform archs of the MobileNetV3 space differ in ~27 of 46 genes, so a uniform
        crossover of unrelated parents lands ~13 genes from both, a mid-sized arch about as
        informed as a random one; restricted mating recombines relatives, whose children stay
        within a few genes of what was measured.
    """

    crossover_prob: float = 0.9
    swap_prob: float = 0.5
    mutation_rate: float = 1.0
    max_rounds: int = 20
    mating_radius: int | None = 6

    def __post_init__(self) -> None:
        if not 0.0 <= self.crossover_prob <= 1.0:
            raise ValueError(f"crossover_prob must be in [0, 1], got {self.crossover_prob}")
        if not 0.0 <= self.swap_prob <= 1.0:
            raise ValueError(f"swap_prob must be in [0, 1], got {self.swap_prob}")
        if self.mutation_rate < 0:
            raise ValueError(f"mutation_rate must be >= 0, got {self.mutation_rate}")
        if self.max_rounds < 0:
            raise ValueError(f"max_rounds must be >= 0, got {self.max_rounds}")
        if self.mating_radius is not None and self.mating_radius < 1:
            raise ValueError(f"mating_radius must be >= 1 or None, got {self.mating_radius}")


class GeneCodec:
    """Batch canonicalisation, active masks and row keys for one space.

    Which genes are active depends, in every space here, only on the ``depth`` genes (the
    *controllers*). The mask of each controller setting is computed once with
    ``space.active_dims`` and cached, so a batch needs one table lookup, not one decode per row.
    That assumption is checked on random rows when the codec is built; a space where it fails
    (or that canonicalises in its own way) is handled row by row through ``space.decode``,
    exact but slow.
    """

    def __init__(self, space: SearchSpace, *, checks: int = 64):
        self.space = space
        self.card = np.asarray(space.cardinalities(), dtype=np.int64)
        self.n_genes = int(self.card.size)
        self.names = [d.name for d in space.dims]
        # Choice values per gene, padded, so that a genotype matrix maps to values by indexing.
        width = int(self.card.max()) if self.n_genes else 1
        self._values = np.zeros((self.n_genes, width), dtype=np.int64)
        for i, d in enumerate(space.dims):
            self._values[i, : len(d.choices)] = d.choices
        self._key_dtype = np.uint8 if width <= 256 else np.uint16
        self.controllers = np.asarray(
            [i for i, d in enumerate(space.dims) if d.kind == "depth"], dtype=np.int64
        )
        ctrl_card = self.card[self.controllers]
        self._radix = np.ones(len(self.controllers), dtype=np.int64)
        for k in range(len(self.controllers) - 2, -1, -1):
            self._radix[k] = self._radix[k + 1] * ctrl_card[k + 1]
        n_codes = int(np.prod(ctrl_card)) if len(self.controllers) else 1
        # A table per controller setting only when it stays small; masks fill in lazily.
        self.tabled = n_codes <= 1 << 16
        self._masks = np.zeros((n_codes if self.tabled else 0, self.n_genes), dtype=bool)
        self._filled = np.zeros(n_codes if self.tabled else 0, dtype=bool)
        self._row_masks: dict[bytes, np.ndarray] = {}
        # exact: the controller table reproduces the space's own masks and canonical form, so
        # the vectorised paths are valid (else every row goes through the space).
        self.exact = self.tabled and self._check(checks)

    # ----- checks -----------------------------------------------------------------------------
    def _check(self, n: int) -> bool:
        rng = np.random.default_rng(12345)  # fixed: the check must not touch a searcher's rng
        raw = rng.integers(0, self.card, size=(n, self.n_genes))
        fast = self._table_masks(raw)
        for row, mask in zip(raw, fast, strict=True):
            arch = self._raw_arch(row)
            if not np.array_equal(mask, self._slow_mask(arch)):
                return False
            if tuple(int(v) for v in np.where(mask, row, 0)) != self.space.encode(arch):
                return False
        return True

    def _raw_arch(self, row: np.ndarray) -> Arch:
        return {
            n: int(self._values[i, int(g)])
            for i, (n, g) in enumerate(zip(self.names, row, strict=True))
        }

    def _slow_mask(self, arch: Arch) -> np.ndarray:
        active = self.space.active_dims(arch)
        return np.asarray([n in active for n in self.names], dtype=bool)

    def _table_masks(self, genes: np.ndarray) -> np.ndarray:
        if not len(self.controllers):
            if not self._filled[0]:
                self._masks[0] = self._slow_mask(self._raw_arch(np.zeros(self.n_genes, int)))
                self._filled[0] = True
            return np.broadcast_to(self._masks[0], genes.shape)
        codes = genes[:, self.controllers] @ self._radix
        missing = np.unique(codes[~self._filled[codes]])
        for code in missing:
            row = np.zeros(self.n_genes, dtype=np.int64)
            rest = int(code)
            for k, i in enumerate(self.controllers):
                row[i], rest = divmod(rest, int(self._radix[k]))
            self._masks[code] = self._slow_mask(self._raw_arch(row))
            self._filled[code] = True
        return self._masks[codes]

    # ----- batch operations -------------------------------------------------------------------
    def matrix(self, genotypes: Sequence[Genotype] | np.ndarray) -> np.ndarray:
        """An ``(n, genes)`` int64 matrix (a copy) of genotypes."""
        return np.asarray(genotypes, dtype=np.int64).reshape(-1, self.n_genes).copy()

    def active(self, genes: np.ndarray) -> np.ndarray:
        """Boolean mask of the genes each row's arch uses."""
        if self.exact:
            return np.asarray(self._table_masks(genes))
        out = np.empty(genes.shape, dtype=bool)
        for r, key in enumerate(self.keys(genes)):
            mask = self._row_masks.get(key)
            if mask is None:
                if len(self._row_masks) >= 200_000:  # bounded: a few inner searches' worth
                    self._row_masks.clear()
                mask = self._row_masks[key] = self._slow_mask(self._raw_arch(genes[r]))
            out[r] = mask
        return out

    def canonical(self, genes: np.ndarray) -> np.ndarray:
        """Canonical rows: inactive genes at index 0 (what ``space.encode`` would give)."""
        if self.exact:
            return np.where(self.active(genes), genes, 0)
        return self.matrix([self.space.encode(self._raw_arch(row)) for row in genes])

    def keys(self, genes: np.ndarray) -> list[bytes]:
        """One hashable key per row (its bytes), for sets and dicts of genotypes."""
        g = np.ascontiguousarray(genes, dtype=self._key_dtype)
        if g.shape[0] == 0:
            return []
        rows = g.view(np.dtype((np.void, g.shape[1] * g.itemsize))).ravel()
        return [k.tobytes() for k in rows]

    def tuples(self, genes: np.ndarray) -> list[Genotype]:
        return [tuple(row) for row in genes.tolist()]

    def archs(self, genes: np.ndarray) -> list[Arch]:
        """Arch dicts of canonical rows, without re-validating each one."""
        vals = self._values[np.arange(self.n_genes), genes].tolist()
        return [dict(zip(self.names, row, strict=True)) for row in vals]

    def values(self, genes: np.ndarray) -> np.ndarray:
        """The choice value of every gene of every row."""
        return self._values[np.arange(self.n_genes), genes]


def distance(codec: GeneCodec, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Genes that differ between canonical rows of ``a`` and ``b``, ``(len(a), len(b))``."""
    ca, cb = codec.canonical(a), codec.canonical(b)
    return np.asarray((ca[:, None, :] != cb[None, :, :]).sum(axis=2))


def tournament(
    rng: np.random.Generator, ranks: np.ndarray, crowd: np.ndarray, k: int
) -> np.ndarray:
    """Indices of ``k`` binary-tournament winners (lower rank, then larger crowding)."""
    n = ranks.shape[0]
    a = rng.integers(0, n, size=k)
    b = rng.integers(0, n, size=k)
    better_b = (ranks[b] < ranks[a]) | ((ranks[b] == ranks[a]) & (crowd[b] > crowd[a]))
    return np.where(better_b, b, a)


def mates(
    rng: np.random.Generator,
    codec: GeneCodec,
    genes: np.ndarray,
    first: np.ndarray,
    ranks: np.ndarray,
    crowd: np.ndarray,
    radius: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A partner for each population index in ``first``: the binary-tournament winner of two
    random members within ``radius`` genes (and not identical). Returns the partners and a mask
    of the first parents that have any such neighbour (others are paired with themselves)."""
    d = distance(codec, genes, genes)
    near = (d <= radius) & (d > 0)
    cand = near[first]
    k = len(first)
    has = cand.any(axis=1)
    # Two uniform picks among each row's neighbours: argmax of random scores on the mask.
    a = np.where(cand, rng.random(cand.shape), -1.0).argmax(axis=1)
    b = np.where(cand, rng.random(cand.shape), -1.0).argmax(axis=1)
    better_b = (ranks[b] < ranks[a]) | ((ranks[b] == ranks[a]) & (crowd[b] > crowd[a]))
    partner = np.where(better_b, b, a)
    return np.where(has, partner, first) if k else partner, has


def uniform_crossover(
    rng: np.random.Generator,
    p1: np.ndarray,
    p2: np.ndarray,
    crossover_prob: float | np.ndarray = 0.9,
    swap_prob: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Two children per parent pair (rows of ``p1``, ``p2``): every child gene comes from one of
    the two parents, and a crossed pair (probability ``crossover_prob``, a number or one per
    pair) exchanges each gene with probability ``swap_prob``."""
    k, d = p1.shape
    crossed = np.asarray(rng.random(k) < crossover_prob, dtype=bool)
    swap = (rng.random((k, d)) < swap_prob) & crossed[:, None]
    return np.where(swap, p2, p1), np.where(swap, p1, p2)


def mutate(
    rng: np.random.Generator,
    codec: GeneCodec,
    genes: np.ndarray,
    rate: float = 1.0,
    *,
    exactly_one: bool = False,
) -> np.ndarray:
    """Replace active genes of canonical rows by another of their values; canonical result.

    Each active gene (with more than one choice) changes with probability ``rate / number of
    such genes in its row``, so about ``rate`` genes per child; ``exactly_one`` changes exactly
    one per row (used to re-vary duplicates).
    """
    k, d = genes.shape
    if k == 0:
        return genes.copy()
    mutable = codec.active(genes) & (codec.card > 1)
    n_mut = mutable.sum(axis=1)
    if exactly_one:
        score = np.where(mutable, rng.random((k, d)), -1.0)
        pick = np.zeros((k, d), dtype=bool)
        pick[np.arange(k), score.argmax(axis=1)] = True
        pick &= (n_mut > 0)[:, None]
    else:
        p = np.minimum(1.0, rate / np.maximum(n_mut, 1))
        pick = mutable & (rng.random((k, d)) < p[:, None])
    # A uniform offset in 1..card-1 lands on every *other* value with equal probability.
    card = np.maximum(codec.card, 2)
    offset = rng.integers(1, card, size=(k, d))
    return codec.canonical(np.where(pick, (genes + offset) % card, genes))


def _first_unique(keys: Sequence[bytes], bad: np.ndarray) -> np.ndarray:
    """Mask of rows that are neither ``bad`` nor a repeat of an earlier row."""
    out = ~bad
    seen: set[bytes] = set()
    for i, key in enumerate(keys):
        if key in seen:
            out[i] = False
        elif out[i]:
            seen.add(key)
    return out


def breed(
    rng: np.random.Generator,
    codec: GeneCodec,
    genes: np.ndarray,
    ranks: np.ndarray,
    crowd: np.ndarray,
    n: int,
    cfg: GeneticConfig,
    exclude: Callable[[np.ndarray, list[bytes]], np.ndarray] | None = None,
) -> np.ndarray:
    """Up to ``n`` new canonical children of the population ``genes``, as a matrix.

    ``exclude(rows, keys)`` marks rows that must not be proposed (e.g. already seen). A child
    that is excluded or repeats an earlier child of the batch is mutated again (one more gene per
    round, for ``cfg.max_rounds`` rounds); fewer than ``n`` come back only when the population's
    neighbourhood is exhausted.
    """
    if n <= 0 or genes.shape[0] == 0:
        return np.zeros((0, codec.n_genes), dtype=np.int64)
    pairs = (n + 1) // 2
    i1 = tournament(rng, ranks, crowd, pairs)
    prob: float | np.ndarray = cfg.crossover_prob
    if cfg.mating_radius is None:
        i2 = tournament(rng, ranks, crowd, pairs)
    else:
        i2, has_mate = mates(rng, codec, genes, i1, ranks, crowd, cfg.mating_radius)
        prob = np.where(has_mate, cfg.crossover_prob, 0.0)
    c1, c2 = uniform_crossover(rng, genes[i1], genes[i2], prob, cfg.swap_prob)
    kids = mutate(rng, codec, codec.canonical(np.concatenate([c1, c2])[:n]), cfg.mutation_rate)
    ok = np.zeros(len(kids), dtype=bool)
    taken: set[bytes] = set()
    for _ in range(cfg.max_rounds + 1):
        todo = np.flatnonzero(~ok)
        if not todo.size:
            break
        rows = kids[todo]
        keys = codec.keys(rows)
        bad = np.fromiter((k in taken for k in keys), dtype=bool, count=len(keys))
        if exclude is not None:
            bad |= exclude(rows, keys)
        good = _first_unique(keys, bad)
        ok[todo[good]] = True
        taken.update(k for k, g in zip(keys, good, strict=True) if g)
        redo = todo[~good]
        if redo.size:  # vary the duplicates again instead of replacing them by random archs
            kids[redo] = mutate(rng, codec, kids[redo], exactly_one=True)
    return kids[ok]


def offspring(
    rng: np.random.Generator,
    space: SearchSpace,
    genes: np.ndarray,
    ranks: np.ndarray,
    crowd: np.ndarray,
    n: int,
    exclude: Callable[[Genotype], bool],
    cfg: GeneticConfig,
    max_rounds: int | None = None,
    codec: GeneCodec | None = None,
) -> list[Genotype]:
    """Up to ``n`` new canonical genotypes, none excluded and none repeated (tuple interface of
    :func:`breed`; ``max_rounds`` overrides ``cfg.max_rounds``)."""
    codec = codec or GeneCodec(space)
    if max_rounds is not None:
        cfg = dataclasses.replace(cfg, max_rounds=max_rounds)

    def excluded(rows: np.ndarray, keys: list[bytes]) -> np.ndarray:
        return np.fromiter((exclude(g) for g in codec.tuples(rows)), dtype=bool, count=len(rows))

    kids = breed(rng, codec, codec.matrix(genes), ranks, crowd, n, cfg, excluded)
    return codec.tuples(kids)
