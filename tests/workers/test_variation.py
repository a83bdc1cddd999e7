"""Discrete variation operators, the batch genotype codec, LINAS's matrix fast paths and the
constraint-first start of the searchers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from search_spaces import get_space
from search_spaces.base import Arch, SearchSpace
from workers.search import Constraint, Objective, make_searcher
from workers.search.linas import _AdditiveCount, _TrustRegion
from workers.search.nsga2 import run_nsga2
from workers.search.variation import (
    GeneCodec,
    GeneticConfig,
    breed,
    distance,
    mutate,
    offspring,
    uniform_crossover,
)

OBJS = [Objective("accuracy", "max"), Objective("flops", "min")]


def mbv3() -> SearchSpace:
    return get_space("mbv3", num_classes=10, in_channels=1, small_input=True, resolutions=(8,))


def mlp() -> SearchSpace:
    return get_space("mlp", widths=(8, 16, 32, 48, 64, 96), depths=(1, 2, 3, 4))


def sample(space: SearchSpace, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray([space.encode(space.sample(rng)) for _ in range(n)], dtype=np.int64)


def fake_eval(space: SearchSpace, arch: Arch) -> dict[str, float]:
    f = space.flops(arch)
    g = np.asarray(space.encode(arch), dtype=float)
    wiggle = 0.02 * np.sin(g @ np.arange(1, g.size + 1))
    scale = space.flops(space.max_arch()) / 4
    return {"accuracy": float(1 - np.exp(-f / scale) + wiggle), "flops": float(f)}


# ----- codec ------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [mbv3, mlp])
def test_codec_matches_the_space(make: object) -> None:
    space = make()  # type: ignore[operator]
    codec = GeneCodec(space)
    assert codec.exact
    rng = np.random.default_rng(1)
    raw = rng.integers(0, codec.card, size=(300, codec.n_genes))
    canon = codec.canonical(raw)
    for row, c in zip(raw, canon, strict=True):
        arch = {d.name: d.choices[int(i)] for d, i in zip(space.dims, row, strict=True)}
        assert tuple(c) == space.encode(arch)
    active = codec.active(canon)
    for c, archs, mask in zip(canon, codec.archs(canon), active, strict=True):
        assert archs == space.decode(tuple(c))
        names = space.active_dims(archs)
        assert [d.name in names for d in space.dims] == mask.tolist()
    assert len(set(codec.keys(canon))) == len({tuple(c) for c in canon})


# ----- crossover --------------------------------------------------------------------------------
def test_uniform_crossover_exchanges_genes() -> None:
    space = mbv3()
    p1, p2 = sample(space, 500, seed=1), sample(space, 500, seed=2)
    c1, c2 = uniform_crossover(np.random.default_rng(0), p1, p2, crossover_prob=1.0)
    # Every child gene comes from one parent, and the two children share the parents' genes.
    assert np.all((c1 == p1) | (c1 == p2))
    assert np.all(np.where(c1 == p1, c2 == p2, c2 == p1))
    differ = p1 != p2
    swapped = (c1 != p1) & differ
    assert 0.45 < swapped.sum() / differ.sum() < 0.55  # each gene exchanged with prob. 1/2
    assert np.all(np.any(c1 != p1, axis=1) & np.any(c1 != p2, axis=1))  # a mix of both
    c1, _ = uniform_crossover(np.random.default_rng(0), p1, p2, crossover_prob=0.0)
    assert np.array_equal(c1, p1)


# ----- mutation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [mbv3, mlp])
def test_mutation_changes_about_one_active_gene(make: object) -> None:
    space = make()  # type: ignore[operator]
    codec = GeneCodec(space)
    parents = sample(space, 4000)
    kids = mutate(np.random.default_rng(0), codec, parents, rate=1.0)
    assert np.array_equal(kids, codec.canonical(kids))
    before, after = codec.active(parents), codec.active(kids)
    changed = kids != parents
    # A gene the parent does not use is never touched (it stays at index 0, or becomes active
    # at index 0 when a depth grows), so inactive genes never count as changes.
    assert not np.any(changed & ~before)
    direct = changed & before & after  # genes replaced by another value
    assert 0.9 < direct.sum(axis=1).mean() < 1.1
    assert np.all(kids[changed & before & after] != parents[changed & before & after])
    one = mutate(np.random.default_rng(1), codec, parents, exactly_one=True)
    assert np.all(((one != parents) & before & codec.active(one)).sum(axis=1) == 1)


def test_mutation_rate_counts_only_active_genes() -> None:
    space = mbv3()
    codec = GeneCodec(space)
    depth = [i for i, d in enumerate(space.dims) if d.kind == "depth"]
    shallow, deep = sample(space, 3000, seed=3), sample(space, 3000, seed=4)
    shallow[:, depth], deep[:, depth] = 0, len(space.dims[depth[0]].choices) - 1
    shallow, deep = codec.canonical(shallow), codec.canonical(deep)
    for parents in (shallow, deep):
        kids = mutate(np.random.default_rng(5), codec, parents, rate=2.0)
        both = codec.active(parents) & codec.active(kids)
        assert 1.85 < ((kids != parents) & both).sum(axis=1).mean() < 2.15


# ----- breeding and duplicates ------------------------------------------------------------------
def test_breed_revaries_duplicates_instead_of_random_fill() -> None:
    space = mbv3()
    codec = GeneCodec(space)
    parent = sample(space, 1)
    pop = np.repeat(parent, 10, axis=0)  # no diversity: every cross is a copy of the parent
    ranks, crowd = np.zeros(10, dtype=int), np.zeros(10)
    parent_key = codec.keys(parent)[0]

    def exclude(rows: np.ndarray, keys: list[bytes]) -> np.ndarray:
        return np.asarray([k == parent_key for k in keys])

    kids = breed(np.random.default_rng(0), codec, pop, ranks, crowd, 40, GeneticConfig(), exclude)
    assert len(kids) == 40
    assert len(set(codec.keys(kids))) == 40 and parent_key not in codec.keys(kids)
    d = distance(codec, kids, parent)[:, 0]
    assert d.min() >= 1 and d.mean() < 3  # mutants of the parent, not random archs (~27 away)


def test_breed_on_a_diverse_population_is_new_and_near() -> None:
    space = mbv3()
    codec = GeneCodec(space)
    rng = np.random.default_rng(0)
    pop = codec.canonical(mutate(rng, codec, np.repeat(sample(space, 5), 4, axis=0), rate=3.0))
    seen = set(codec.keys(pop))

    def exclude(rows: np.ndarray, keys: list[bytes]) -> np.ndarray:
        return np.asarray([k in seen for k in keys])

    ranks, crowd = np.zeros(len(pop), dtype=int), np.ones(len(pop))
    kids = breed(rng, codec, pop, ranks, crowd, 100, GeneticConfig(), exclude)
    assert len(kids) == 100 and len(set(codec.keys(kids))) == 100
    assert not (set(codec.keys(kids)) & seen)
    assert (distance(codec, kids, pop).min(axis=1) <= 4).mean() >= 0.9


def test_offspring_of_an_exhausted_space_returns_fewer() -> None:
    space = get_space("mlp", widths=(8, 16), depths=(1, 2))  # 6 archs
    codec = GeneCodec(space)
    every = sorted({space.encode(space.sample(np.random.default_rng(s))) for s in range(200)})
    assert len(every) == 6
    genes = codec.matrix(every)
    ranks, crowd = np.zeros(6, dtype=int), np.zeros(6)
    kids = offspring(
        np.random.default_rng(0),
        space,
        genes,
        ranks,
        crowd,
        4,
        set(every[:4]).__contains__,
        GeneticConfig(),
    )
    assert sorted(kids) == every[4:]


def test_run_nsga2_evaluates_distinct_rows_within_budget() -> None:
    space = mbv3()
    codec = GeneCodec(space)
    calls: list[np.ndarray] = []

    def evaluate(genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(genes.copy())
        f = np.stack([genes.sum(axis=1), -genes[:, :10].sum(axis=1)], axis=1).astype(float)
        return f, np.zeros(len(genes))

    pop, f, v = run_nsga2(
        space,
        np.random.default_rng(0),
        evaluate,
        list(map(tuple, sample(space, 20))),
        population=20,
        evaluations=500,
        cfg=GeneticConfig(),
    )
    rows = np.concatenate(calls)
    assert len(rows) == 500
    assert len(set(codec.keys(rows))) == 500
    assert np.array_equal(rows, codec.canonical(rows))
    assert len(pop) == 20 and f.shape == (20, 2) and v.shape == (20,)


# ----- evolution uses them ----------------------------------------------------------------------
def test_evolution_needs_no_random_fill_and_stays_near() -> None:
    space = mbv3()
    s = make_searcher("evolution", space, OBJS, seed=0, population=20)
    told: list[tuple[int, ...]] = []
    near: list[bool] = []
    for r in range(6):
        archs = s.ask(20)
        genes = s.codec.matrix([space.encode(a) for a in archs])
        if r:
            d = distance(s.codec, genes, s.codec.matrix(told)).min(axis=1)
            near += (d <= 4).tolist()
        s.tell(archs, [fake_eval(space, a) for a in archs])
        told += [space.encode(a) for a in archs]
    assert s.state()["random_fill"] == 0
    assert np.mean(near) >= 0.9


# ----- constraint-first start -------------------------------------------------------------------
def flops_percentile(space: SearchSpace, q: float) -> float:
    rng = np.random.default_rng(11)
    return float(np.percentile([space.flops(space.sample(rng)) for _ in range(2000)], q))


@pytest.mark.parametrize("algo", ["evolution", "linas", "bayesian"])
def test_first_population_holds_min_arch_and_archs_inside_a_tight_bound(algo: str) -> None:
    space = mbv3()
    bound = flops_percentile(space, 2)
    opts = {"population": 20} if algo == "evolution" else {}
    s = make_searcher(
        algo,
        space,
        OBJS[:1],
        seed=0,
        batch_size=20,
        constraints=[Constraint("flops", "<=", bound)],
        **opts,
    )
    first = s.ask(20)
    assert len(first) == 20 and len({space.encode(a) for a in first}) == 20
    assert space.min_arch() in first
    flops = np.asarray([space.flops(a) for a in first])
    inside = flops[flops <= bound]
    assert len(inside) >= 2  # the min arch and at least one arch built near the bound
    assert inside.max() > 0.9 * bound  # just inside, not the min arch again
    again = make_searcher(
        algo,
        space,
        OBJS[:1],
        seed=0,
        batch_size=20,
        constraints=[Constraint("flops", "<=", bound)],
        **opts,
    ).ask(20)
    assert again == first


def test_random_search_stays_uniform() -> None:
    space = mbv3()
    s = make_searcher(
        "random", space, OBJS[:1], seed=0, constraints=[Constraint("flops", "<=", 1.0)]
    )
    first = s.ask(20)
    rng = np.random.default_rng([0, 0])
    assert first == [space.sample(rng) for _ in range(20)]


def test_near_bound_uses_caller_estimates() -> None:
    space = mbv3()

    def latency(archs: Sequence[Mapping[str, int]]) -> np.ndarray:
        return np.asarray([space.params(a) / 1e5 for a in archs])

    big = float(latency([space.max_arch()])[0])
    small = float(latency([space.min_arch()])[0])
    bound = small + 0.1 * (big - small)
    objs = [Objective("accuracy", "max"), Objective("latency_ms", "min", bound=bound)]
    s = make_searcher(
        "evolution", space, objs, seed=0, population=30, estimates={"latency_ms": latency}
    )
    lat = latency(s.ask(30))
    near = lat[(lat <= bound) & (lat > small)]
    assert len(near) >= 1 and near.max() > 0.9 * bound


def test_evolution_finds_feasible_archs_where_uniform_sampling_does_not() -> None:
    space = mbv3()
    bound = flops_percentile(space, 0.1)
    feasible: dict[str, int] = {}
    for algo in ("random", "evolution"):
        s = make_searcher(
            algo,
            space,
            OBJS[:1],
            seed=0,
            batch_size=20,
            constraints=[Constraint("flops", "<=", bound)],
            **({"population": 20} if algo == "evolution" else {}),
        )
        count = 0
        for r in range(5):
            archs = s.ask(20)
            s.tell(archs, [fake_eval(space, a) for a in archs])
            if r:  # after the first population
                count += sum(space.flops(a) <= bound for a in archs)
        feasible[algo] = count
    assert feasible["random"] <= 2
    assert feasible["evolution"] >= 20


# ----- LINAS fast paths -------------------------------------------------------------------------
@pytest.mark.parametrize("make", [mbv3, mlp])
@pytest.mark.parametrize("metric", ["flops", "params"])
def test_counts_from_genotype_matrices_are_exact(make: object, metric: str) -> None:
    space = make()  # type: ignore[operator]
    codec = GeneCodec(space)
    count = _AdditiveCount(space, codec, metric)
    genes = sample(space, 200, seed=9)
    fn = space.flops if metric == "flops" else space.params
    assert count(genes).tolist() == [float(fn(a)) for a in codec.archs(genes)]


def test_linas_uses_the_fast_predictor_and_trust_region() -> None:
    space = mbv3()
    s = make_searcher(
        "linas", space, OBJS, seed=0, batch_size=20, predictor="ridge", evaluations=400
    )
    for _ in range(3):
        archs = s.ask(20)
        s.tell(archs, [fake_eval(space, a) for a in archs])
    assert s.last_fit["fast_predictors"] == {"accuracy": True}  # type: ignore[attr-defined]
    told = s.codec.matrix(s.genotypes[:40])
    newest = s.codec.matrix(s.genotypes[40:])
    trust = _TrustRegion(s.codec, told, 4)
    assert trust.nearest(newest).tolist() == distance(s.codec, newest, told).min(axis=1).tolist()
    assert np.all(trust.nearest(newest) <= 4)


# ----- Bayesian parameters ----------------------------------------------------------------------
def test_bayesian_passes_only_active_ordered_params() -> None:
    from optuna.distributions import IntDistribution

    space = mbv3()
    s = make_searcher("bayesian", space, OBJS, seed=0, n_startup_trials=5, batch_size=8)
    for _ in range(3):
        archs = s.ask(8)
        s.tell(archs, [fake_eval(space, a) for a in archs])
    trials = s.study.get_trials(deepcopy=False)  # type: ignore[attr-defined]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 24
    for t, g in zip(complete, s.genotypes, strict=True):
        arch = space.decode(g)
        active = {n for n in space.active_dims(arch) if len(space.dim(n).choices) > 1}
        assert set(t.params) == active
        assert all(isinstance(d, IntDistribution) for d in t.distributions.values())
        assert t.params["s1.b1.kernel"] == arch["s1.b1.kernel"]  # 3, 5, 7: the value, step 2
    asked = [t for t in trials if t.state.name == "FAIL"]
    assert asked  # optuna proposed the last batches, define-by-run
    for t in asked:
        depth = {i: t.params[f"s{i}.depth"] for i in range(1, 6)}
        blocks = {n.split(".")[1] for n in t.params if n.startswith("s2.b")}
        assert len(blocks) == depth[2]
