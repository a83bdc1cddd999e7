"""LINAS: predictor-in-the-loop multi-objective search.

Loop: measure a batch for real; refit one predictor per predicted metric on every measurement so
far; run a predictor-only NSGA-II (``evaluations`` cheap evaluations, 20,000 by default); propose
the best not-yet-measured archs of everything that inner search saw (ranked by
constraint-domination and crowding on predicted values) as the next batch. The first batch
(``n_init``) is the constraint-first start of :meth:`Searcher.initial_population`.

Metric sources: ``flops`` and ``params`` come from the space's analytics; ``estimates`` (or its
older name ``metric_fns``) may supply any other cheap metric (e.g. a latency lookup table);
everything else is predicted from the measurements with ``predictor`` (a name for
:func:`workers.predictors.make_predictor` or a factory ``space -> predictor``). The default is
the Gaussian process: on the digits benchmark it gave LINAS a higher hypervolume at 100
evaluations than ridge or the MLP ensemble.

The inner loop works on genotype matrices. Decoding each of 20,000 archs into a dict and
featurising it one by one costs ~0.5 ms per arch, more than the whole budget of an ask, so:

- analytic counts are evaluated from the matrix with tables: :class:`_AdditiveCount` fits, per
  setting of the ``resolution`` genes, one exact additive model (a term per group of genes such
  as ``s2.b3.kernel`` / ``s2.b3.expand``, counted when the group is active) and keeps it only
  when it reproduces ``space.flops`` / ``space.params`` exactly on held-out archs (MobileNetV3);
  spaces where counts are not additive (the MLP's products of widths) use a per-arch cache;
- a fitted :class:`~workers.predictors.base.Predictor` with the ``onehot`` encoding is fed
  features built from the matrix (:class:`_FastPredictor`), checked at fit time to equal what
  ``predict`` gives on the measured archs; otherwise it is called on decoded archs;
- the best unmeasured candidates are kept in a running elite (``2 n`` rows) instead of ranking
  all 20,000 at the end (non-dominated sorting is quadratic).

Trust region (``trust_radius``, 4 genes by default; ``None`` turns it off): inside the inner
search, an arch more than ``trust_radius`` genes (canonical genotype) from every measured arch
carries one unit of violation per extra gene, so constraint-domination keeps the predictor-only
search, and therefore the proposals, where the predictors have data. Without it the inner search
drifts on to archs a dozen genes from anything measured, where a predictor fitted on ~100 archs
of a 10^19 space extrapolates (a GP there returns its prior mean) and the search exploits its
errors.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from search_spaces.base import Arch, Genotype, SearchSpace
from workers.search.base import Estimate, Searcher
from workers.search.nsga2 import rank_and_crowd, run_nsga2, survivors
from workers.search.objectives import Constraint, Objective
from workers.search.variation import GeneCodec, GeneticConfig, breed

ANALYTIC = ("flops", "params")


class _Fittable(Protocol):
    def fit(self, archs: Sequence[Mapping[str, int]], y: Sequence[float]) -> Any: ...
    def predict(self, archs: Sequence[Mapping[str, int]]) -> Any: ...


MetricFn = Estimate
#: A metric of a batch of canonical genotypes (an ``(n, genes)`` matrix).
GeneFn = Callable[[np.ndarray], np.ndarray]


def _named(name: str, space: SearchSpace, metric: str) -> _Fittable:
    # Imported here: the predictors need torch / sklearn, the other searchers do not.
    from workers.predictors import make_predictor

    # Only accuracies get the logit transform; a latency below 1 ms is not a probability.
    return make_predictor(name, space, target="auto" if metric == "accuracy" else "identity")


# ----- analytic counts from genotype matrices ---------------------------------------------------
class _AdditiveCount:
    """``space.flops`` or ``space.params`` of genotype rows, exact, without decoding rows.

    Model, per setting of the context genes (kind ``resolution``): a constant plus, for every
    group of genes sharing a name prefix (``s2.b3`` holds kernel and expand), a value per joint
    choice of the group, counted when all its genes are active. It is fitted by least squares
    on sampled archs and kept only when it reproduces the exact count on as many held-out archs
    (to 1e-6 relative); else, or when a context has too many terms, counts come from the space
    one arch at a time, cached per genotype.
    """

    MAX_TERMS = 4000
    MAX_CACHE = 200_000

    def __init__(self, space: SearchSpace, codec: GeneCodec, metric: str):
        self.space, self.codec = space, codec
        self.fn: Callable[[Mapping[str, int]], int] = (
            space.flops if metric == "flops" else space.params
        )
        ctx = [i for i, d in enumerate(space.dims) if d.kind == "resolution"]
        self.ctx = np.asarray(ctx, dtype=np.int64)
        groups: dict[str, list[int]] = {}
        for i, d in enumerate(space.dims):
            if i not in ctx:
                groups.setdefault(d.name.rsplit(".", 1)[0], []).append(i)
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups.values()]
        self.sizes = [int(np.prod(codec.card[g])) for g in self.groups]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.n_terms = int(self.offsets[-1]) + 1
        self._weights: dict[tuple[int, ...], np.ndarray | None] = {}
        self._cache: dict[bytes, float] = {}
        self.additive = self.n_terms <= self.MAX_TERMS

    def _design(self, genes: np.ndarray) -> np.ndarray:
        active = self.codec.active(genes)
        x = np.zeros((genes.shape[0], self.n_terms))
        x[:, -1] = 1.0
        rows = np.arange(genes.shape[0])
        for g, off in zip(self.groups, self.offsets[:-1], strict=True):
            code = np.zeros(genes.shape[0], dtype=np.int64)
            for i in g:
                code = code * self.codec.card[i] + genes[:, i]
            on = active[:, g].all(axis=1)
            x[rows[on], off + code[on]] = 1.0
        return x

    def _exact(self, genes: np.ndarray) -> np.ndarray:
        out = np.empty(genes.shape[0])
        for r, (key, arch) in enumerate(
            zip(self.codec.keys(genes), self.codec.archs(genes), strict=True)
        ):
            v = self._cache.get(key)
            if v is None:
                if len(self._cache) >= self.MAX_CACHE:  # bounded: a few asks' worth of archs
                    self._cache.clear()
                v = self._cache[key] = float(self.fn(arch))
            out[r] = v
        return out

    def _fit_context(self, ctx: tuple[int, ...]) -> np.ndarray | None:
        rng = np.random.default_rng(7)  # fixed: the tables must not depend on a search's rng
        n = self.n_terms + self.n_terms // 2 + 64  # enough for every term to show up often
        raw = rng.integers(0, self.codec.card, size=(n + 64, self.codec.n_genes))
        if len(self.ctx):
            raw[:, self.ctx] = ctx
        genes = self.codec.canonical(raw)
        y = np.asarray([float(self.fn(a)) for a in self.codec.archs(genes)])
        x = self._design(genes)
        w, *_ = np.linalg.lstsq(x[:n], y[:n], rcond=None)
        err = np.abs(x[n:] @ w - y[n:])
        if np.all(err <= 1e-6 * np.maximum(1.0, np.abs(y[n:]))):
            return np.asarray(w)
        return None

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        if not self.additive:
            return self._exact(genes)
        out = np.empty(genes.shape[0])
        ctxs = genes[:, self.ctx] if len(self.ctx) else np.zeros((genes.shape[0], 0), np.int64)
        uniq, inv = np.unique(ctxs, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        for u, c in enumerate(uniq):
            key = tuple(int(v) for v in c)
            if key not in self._weights:
                self._weights[key] = self._fit_context(key)
            w = self._weights[key]
            rows = inv == u
            out[rows] = self._exact(genes[rows]) if w is None else self._design(genes[rows]) @ w
        return np.rint(out)  # exact integer counts; rint removes the least-squares round-off


_COUNTS: dict[tuple[str, str, str], _AdditiveCount] = {}


def _counts(space: SearchSpace, codec: GeneCodec, metric: str) -> _AdditiveCount:
    """One table per (space class, spec, metric) and process: fitting costs ~0.1 s a context."""
    key = (type(space).__qualname__, json.dumps(space.spec(), sort_keys=True), metric)
    if key not in _COUNTS or _COUNTS[key].codec.card.tolist() != codec.card.tolist():
        _COUNTS[key] = _AdditiveCount(space, codec, metric)
    return _COUNTS[key]


# ----- predictors on genotype matrices ----------------------------------------------------------
class _FastPredictor:
    """Predictions of a fitted one-hot :class:`Predictor` straight from genotype rows.

    The one-hot encoding of :class:`~workers.predictors.features.Featurizer` is (one-hot of the
    active choices, ordinal position of the active choices, log MACs and log params over those
    of the largest arch); this builds it from the matrix and applies the predictor's target
    transform. ``ok`` is False (use the slow path) unless the features and the predictions equal
    the predictor's own on the archs it was fitted on.
    """

    def __init__(
        self,
        model: Any,
        space: SearchSpace,
        codec: GeneCodec,
        flops: GeneFn,
        params: GeneFn,
        check: np.ndarray,
    ):
        self.model, self.codec = model, codec
        self.flops, self.params = flops, params
        self.offsets = np.concatenate([[0], np.cumsum(codec.card)[:-1]]).astype(np.int64)
        self.n_onehot = int(codec.card.sum())
        big = space.max_arch()
        self.log_flops = math.log(max(2, space.flops(big)))
        self.log_params = math.log(max(2, space.params(big)))
        self.ok = self._usable() and self._agrees(check)

    def _usable(self) -> bool:
        from workers.predictors.base import Predictor
        from workers.predictors.features import Featurizer

        m = self.model
        return (
            isinstance(m, Predictor)
            and type(m.featurize) is Featurizer
            and m.featurize.encoding == "onehot"
            and m.fitted
        )

    def _agrees(self, genes: np.ndarray) -> bool:
        archs = self.codec.archs(genes)
        slow_x = self.model.featurize(archs)
        if slow_x.shape != (len(genes), self.n_onehot + self.codec.n_genes + 2):
            return False
        if not np.allclose(self.features(genes), slow_x, rtol=1e-9, atol=1e-9):
            return False
        slow = np.asarray(self.model.predict(archs), dtype=float)
        return bool(np.allclose(self(genes), slow, rtol=1e-6, atol=1e-9))

    def features(self, genes: np.ndarray) -> np.ndarray:
        n = genes.shape[0]
        active = self.codec.active(genes)
        onehot = np.zeros((n, self.n_onehot))
        r, c = np.nonzero(active)
        onehot[r, self.offsets[c] + genes[r, c]] = 1.0
        ordinal = np.where(active, (genes + 1) / self.codec.card, 0.0)
        logs = np.stack(
            [
                np.log(np.maximum(2.0, self.flops(genes))) / self.log_flops,
                np.log(np.maximum(2.0, self.params(genes))) / self.log_params,
            ],
            axis=1,
        )
        return np.concatenate([onehot, ordinal, logs], axis=1)

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        m = self.model
        mean, _std = m._predict(self.features(genes))
        mean = np.asarray(mean, dtype=float) * m.y_std + m.y_mean
        if m.logit:
            mean = 1.0 / (1.0 + np.exp(-mean))
        return np.asarray(mean)


class _TrustRegion:
    """Genes by which each row exceeds ``radius`` from the nearest measured arch.

    Distances come from one matrix product of one-hot encodings (matching genes = dot product),
    so a batch against a thousand measured archs is one BLAS call.
    """

    def __init__(self, codec: GeneCodec, measured: np.ndarray, radius: int):
        self.codec, self.radius = codec, radius
        self.offsets = np.concatenate([[0], np.cumsum(codec.card)[:-1]]).astype(np.int64)
        self.width = int(codec.card.sum())
        self.measured_t = self._onehot(codec.canonical(measured)).T.copy()

    def _onehot(self, genes: np.ndarray) -> np.ndarray:
        x = np.zeros((genes.shape[0], self.width), dtype=np.float32)
        np.put_along_axis(x, genes + self.offsets, 1.0, axis=1)
        return x

    def nearest(self, genes: np.ndarray) -> np.ndarray:
        """Genes that differ from the nearest measured arch, per (canonical) row."""
        match = self._onehot(genes) @ self.measured_t
        return np.asarray(self.codec.n_genes - np.rint(match.max(axis=1)), dtype=float)

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, self.nearest(genes) - self.radius)


class _Elite:
    """The best ``cap`` rows seen so far (constraint-domination rank, then crowding), kept as
    evaluations stream in, so the end of an ask ranks ``cap`` rows instead of all of them."""

    def __init__(self, cap: int, n_genes: int, n_obj: int):
        self.cap = cap
        self.genes = np.zeros((0, n_genes), dtype=np.int64)
        self.f = np.zeros((0, n_obj))
        self.v = np.zeros(0)

    def add(self, genes: np.ndarray, f: np.ndarray, v: np.ndarray) -> None:
        if not len(genes):
            return
        self.genes = np.concatenate([self.genes, genes])
        self.f, self.v = np.concatenate([self.f, f]), np.concatenate([self.v, v])
        if len(self.genes) > 2 * self.cap:  # trim in bulk: survivors() is quadratic
            keep = survivors(self.f, self.v, self.cap)
            self.genes, self.f, self.v = self.genes[keep], self.f[keep], self.v[keep]

    def best(self, n: int) -> np.ndarray:
        if not len(self.genes):
            return self.genes
        return self.genes[survivors(self.f, self.v, n)]


class LinasSearcher(Searcher):
    name = "linas"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        seed: int = 0,
        constraints: Sequence[Constraint] = (),
        batch_size: int = 50,
        n_init: int | None = None,
        evaluations: int = 20_000,
        population: int = 50,
        predictor: str | Callable[[SearchSpace], _Fittable] = "gp",
        estimates: Mapping[str, Estimate] | None = None,
        metric_fns: Mapping[str, MetricFn] | None = None,
        crossover_prob: float = 0.9,
        mutation_rate: float = 1.0,
        trust_radius: int | None = 4,
    ):
        if trust_radius is not None and trust_radius < 1:
            raise ValueError(f"trust_radius must be >= 1 or None, got {trust_radius}")
        cheap = {**dict(metric_fns or {}), **dict(estimates or {})}
        super().__init__(
            space,
            objectives,
            seed=seed,
            constraints=constraints,
            batch_size=batch_size,
            estimates=cheap,
        )
        self.n_init = n_init or batch_size
        self.inner_evaluations = evaluations
        self.population = population
        self.predictor = predictor
        self.metric_fns = cheap  # caller-supplied cheap metrics, used instead of predictors
        self.cfg = GeneticConfig(crossover_prob=crossover_prob, mutation_rate=mutation_rate)
        self.trust_radius = trust_radius
        self.last_fit: dict[str, Any] = {}
        self.timings: dict[str, float] = {}  # seconds of the last ask, by part
        self.random_fill = 0  # archs this process filled in at random (nothing left to vary)

    def _metrics(self) -> list[str]:
        names = [o.name for o in self.objectives] + [c.name for c in self.constraints]
        return list(dict.fromkeys(names))

    def _caller_fn(self, fn: Estimate) -> GeneFn:
        def values(genes: np.ndarray) -> np.ndarray:
            return np.asarray(fn(self.codec.archs(genes)), dtype=float).reshape(-1)

        return values

    def _fit(self) -> dict[str, GeneFn]:
        fns: dict[str, GeneFn] = {}
        archs = [self.space.decode(g) for g in self.genotypes]
        measured = self.codec.matrix(self.genotypes)
        flops, params = (_counts(self.space, self.codec, m) for m in ANALYTIC)
        fast: dict[str, bool] = {}
        for m in self._metrics():
            if m in self.metric_fns:
                fns[m] = self._caller_fn(self.metric_fns[m])
            elif m in ANALYTIC:
                fns[m] = flops if m == "flops" else params
            elif m in self.estimates:  # another analytic objective: exact, per arch
                fns[m] = self._caller_fn(self.estimates[m])
            else:
                p = self.predictor
                model = _named(p, self.space, m) if isinstance(p, str) else p(self.space)
                model.fit(archs, [e[m] for e in self.evaluations])
                # Checked on (at most) 64 measured archs: the slow featuriser costs ~0.5 ms each.
                check = measured[:64]
                quick = _FastPredictor(model, self.space, self.codec, flops, params, check)
                fast[m] = quick.ok
                fns[m] = quick if quick.ok else self._caller_fn(_predict_fn(model))
        self.last_fit = {"measurements": len(archs), "fast_predictors": fast}
        return fns

    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        if len(self.genotypes) < self.n_init:
            return self.initial_population(n, rng)
        t0 = time.perf_counter()
        fns = self._fit()
        t_fit = time.perf_counter()
        seen_keys = set(self.codec.keys(self.codec.matrix(list(self._seen))))
        elite = _Elite(max(n, 1), self.codec.n_genes, len(self.objectives))
        spent = {"predict": 0.0}
        trust = (
            None
            if self.trust_radius is None
            else _TrustRegion(self.codec, self.codec.matrix(self.genotypes), self.trust_radius)
        )

        def evaluate(genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            t = time.perf_counter()
            cols = {m: fn(genes) for m, fn in fns.items()}
            f, v = self.minimised_columns(cols), self.violation_columns(cols)
            spent["predict"] += time.perf_counter() - t
            if trust is not None:
                v = v + trust(genes)
            keys = self.codec.keys(genes)
            new = np.fromiter((k not in seen_keys for k in keys), dtype=bool, count=len(keys))
            elite.add(genes[new], f[new], v[new])
            return f, v

        f_told = self.minimised(self.evaluations)
        v_told = self.violations(self.evaluations)
        best = survivors(f_told, v_told, self.population)
        start = self.codec.matrix([self.genotypes[i] for i in best])
        if len(start) < self.population:  # too few measured: add their variations, not randoms
            start = np.concatenate(
                [start, self._vary(rng, start, f_told[best], v_told[best], self.population)]
            )
        with _one_blas_thread():
            run_nsga2(
                self.space,
                rng,
                evaluate,
                start,
                population=self.population,
                evaluations=self.inner_evaluations,
                cfg=self.cfg,
                codec=self.codec,
            )
        t_inner = time.perf_counter()
        out = self.codec.tuples(elite.best(n))
        if len(out) < n:  # the inner search saw too few unmeasured archs: vary the measured ones
            more = self._vary(rng, start[: len(best)], f_told[best], v_told[best], n - len(out))
            have = set(out)
            out += [g for g in self.codec.tuples(more) if g not in have]
        if len(out) < n:  # last resort (converged, tiny space): uniform archs
            fill = self.sample_unseen(rng, n - len(out), set(out))
            self.random_fill += len(fill)
            out += fill
        self.timings = {
            "fit_s": t_fit - t0,
            "inner_s": t_inner - t_fit,
            "inner_predict_s": spent["predict"],
            "inner_other_s": t_inner - t_fit - spent["predict"],
        }
        return out[:n]

    def _vary(
        self, rng: np.random.Generator, genes: np.ndarray, f: np.ndarray, v: np.ndarray, k: int
    ) -> np.ndarray:
        """``k`` unseen children of the measured archs ``genes`` (fewer if exhausted)."""
        ranks, crowd = rank_and_crowd(f, v)

        def seen(rows: np.ndarray, keys: list[bytes]) -> np.ndarray:
            return np.fromiter(
                (self.seen(g) for g in self.codec.tuples(rows)), dtype=bool, count=len(rows)
            )

        return breed(rng, self.codec, genes, ranks, crowd, k, self.cfg, seen)

    def state(self) -> dict[str, Any]:
        s = super().state()
        s["inner_evaluations"] = self.inner_evaluations
        s["random_fill"] = self.random_fill
        return s


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread for the inner loop: its matrices have ~50 rows, and on a
    shared machine threads only add synchronisation (a GP prediction of 50 rows took 50 ms with
    two OpenBLAS threads on two busy cores, 2 ms with one)."""
    from threadpoolctl import threadpool_limits  # a dependency (scikit-learn's too)

    return threadpool_limits(limits=1, user_api="blas")


def _predict_fn(model: _Fittable) -> Estimate:
    def values(archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray(model.predict(archs), dtype=float)

    return values
