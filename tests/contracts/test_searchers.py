"""Contract every searcher honours: valid canonical archs, never twice, seeded, resumable,
constraint-aware, and better than its own first batch on a cheap synthetic problem."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from search_spaces import get_space, list_spaces
from search_spaces.base import Arch, Dim, SearchSpace
from workers.search import (
    SEARCHERS,
    Constraint,
    Objective,
    Searcher,
    UnknownSearcher,
    hypervolume,
    make_searcher,
    pareto_mask,
)


class ToySpace(SearchSpace):
    """Depth 1..4, per layer a width and a kernel: 22,620 canonical archs."""

    id = "toy"

    def __init__(self) -> None:
        dims = [Dim("depth", "depth", (1, 2, 3, 4))]
        for j in range(1, 5):
            dims += [
                Dim(f"l{j}.width", "width", (1, 2, 3, 4)),
                Dim(f"l{j}.kernel", "kernel", (1, 3, 5)),
            ]
        super().__init__(dims, {})

    def active_dims(self, arch: Mapping[str, int]) -> set[str]:
        d = arch["depth"]
        return {"depth"} | {f"l{j}.{k}" for j in range(1, d + 1) for k in ("width", "kernel")}

    def flops(self, arch: Mapping[str, int]) -> int:
        a = self.canonical(arch)
        return sum(a[f"l{j}.width"] * a[f"l{j}.kernel"] ** 2 for j in range(1, a["depth"] + 1))

    def params(self, arch: Mapping[str, int]) -> int:
        a = self.canonical(arch)
        return sum(a[f"l{j}.width"] for j in range(1, a["depth"] + 1))


SPACES = {
    "toy": ToySpace,
    "mlp": lambda: get_space("mlp", widths=(8, 16, 32, 48, 64, 96), depths=(1, 2, 3, 4)),
}

# Small, fast settings; every registered searcher must appear here.
OPTIONS: dict[str, dict[str, Any]] = {
    "random": {},
    "evolution": {"population": 10},
    "bayesian": {"n_startup_trials": 10},
    "linas": {"evaluations": 300, "population": 16, "n_init": 10},
}
BATCH = 10
OBJS = [Objective("accuracy", "max"), Objective("flops", "min")]


def _name(key: str) -> str:
    return key.split("-")[0]


def evaluate(space: SearchSpace, arch: Arch) -> dict[str, float]:
    """Accuracy saturates with size; the genotype adds a deterministic wiggle."""
    f = space.flops(arch)
    g = np.asarray(space.encode(arch), dtype=float)
    wiggle = 0.02 * np.sin(g @ np.arange(1, g.size + 1))
    scale = space.flops(space.max_arch()) / 4
    return {"accuracy": float(1 - np.exp(-f / scale) + wiggle), "flops": float(f)}


def run(
    key: str, space: SearchSpace, rounds: int, seed: int = 0, **extra: Any
) -> tuple[Searcher, list[list[Arch]]]:
    opts = {**OPTIONS[key], **extra}
    s = make_searcher(_name(key), space, OBJS, seed=seed, batch_size=BATCH, **opts)
    batches = []
    for _ in range(rounds):
        archs = s.ask(BATCH)
        s.tell(archs, [evaluate(space, a) for a in archs])
        batches.append(archs)
    return s, batches


def test_every_registered_searcher_is_covered() -> None:
    assert {_name(k) for k in OPTIONS} == set(SEARCHERS)
    with pytest.raises(UnknownSearcher, match="known"):
        make_searcher("annealing", ToySpace(), OBJS)
    with pytest.raises(UnknownSearcher, match="bad options"):
        make_searcher("random", ToySpace(), OBJS, populaton=3)


@pytest.fixture(params=sorted(SPACES))
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return SPACES[request.param]()  # type: ignore[no-any-return]


@pytest.mark.parametrize("key", sorted(OPTIONS))
def test_valid_unique_canonical_and_seeded(key: str, space: SearchSpace) -> None:
    _s, batches = run(key, space, rounds=4, seed=7)
    archs = [a for b in batches for a in b]
    assert len(archs) == 4 * BATCH
    genes = [space.encode(a) for a in archs]
    assert len(set(genes)) == len(genes)  # never proposed twice
    for a in archs:
        assert space.canonical(a) == a  # canonical and valid
    _, again = run(key, space, rounds=4, seed=7)
    assert again == batches  # seeded reproducibility
    _, other = run(key, space, rounds=1, seed=8)
    assert other[0] != batches[0]


@pytest.mark.parametrize("key", sorted(OPTIONS))
def test_replay_continues_like_an_uninterrupted_run(key: str) -> None:
    space = ToySpace()
    _full, batches = run(key, space, rounds=4, seed=3)
    history = [(a, evaluate(space, a)) for b in batches[:3] for a in b]
    resumed = make_searcher(_name(key), space, OBJS, seed=3, batch_size=BATCH, **OPTIONS[key])
    resumed.replay(history)
    nxt = resumed.ask(BATCH)
    assert nxt == batches[3]
    told = {space.encode(a) for a, _ in history}
    assert not told & {space.encode(a) for a in nxt}


@pytest.mark.parametrize("key", sorted(k for k in OPTIONS if k != "random"))
def test_constraint_best_feasible_improves(key: str) -> None:
    # The optimum sits on the constraint boundary (accuracy grows with flops), so a searcher
    # must keep finding better archs that still satisfy flops <= 20.
    space = ToySpace()
    bound = 40.0
    s = make_searcher(
        _name(key),
        space,
        OBJS[:1],
        seed=1,
        batch_size=BATCH,
        constraints=[Constraint("flops", "<=", bound)],
        **OPTIONS[key],
    )
    best = []
    for _ in range(6):
        archs = s.ask(BATCH)
        evs = [evaluate(space, a) for a in archs]
        s.tell(archs, evs)
        best.append(max([e["accuracy"] for e in evs if e["flops"] <= bound], default=0.0))
    assert max(best[1:]) > best[0]
    if key == "evolution":  # constraint-domination: feasible archs fill the population first
        pop = [s.evaluations[i] for i in s._pop]  # type: ignore[attr-defined]
        n_feasible = sum(e["flops"] <= bound for e in s.evaluations)
        assert sum(e["flops"] <= bound for e in pop) == min(len(pop), n_feasible)


def test_bayesian_passes_violations_to_optuna() -> None:
    # Optuna's samplers rank trials by these values; they must be the relative violations.
    space = ToySpace()
    s = make_searcher(
        "bayesian", space, OBJS, seed=0, constraints=[Constraint("flops", "<=", 20.0)]
    )
    archs = s.ask(8)
    evs = [evaluate(space, a) for a in archs]
    s.tell(archs, evs)
    trials = [t for t in s.study.trials if t.state.name == "COMPLETE"]  # type: ignore[attr-defined]
    assert len(trials) == 8
    for t, e in zip(trials, evs, strict=True):
        assert t.constraints["c0"] == pytest.approx(max(0.0, e["flops"] - 20.0) / 20.0)


def test_random_accepts_constraints_and_reports_state() -> None:
    s = make_searcher(
        "random", ToySpace(), OBJS, seed=0, constraints=[Constraint("flops", "<=", 5)]
    )
    archs = s.ask(3)
    s.tell(archs, [evaluate(s.space, a) for a in archs])
    assert s.state() == {"algorithm": "random", "seen": 3, "told": 3}
    with pytest.raises(ValueError, match="pair up"):
        s.tell(archs, [])


@pytest.mark.parametrize("key", sorted(OPTIONS))
def test_improves_hypervolume_over_first_batch(key: str) -> None:
    space = ToySpace()
    _s, batches = run(key, space, rounds=6, seed=0)
    ref = [0.0, space.flops(space.max_arch()) * 1.1]
    dirs = ["max", "min"]

    def hv(archs: list[Arch]) -> float:
        pts = np.asarray([[evaluate(space, a)["accuracy"], space.flops(a)] for a in archs])
        return hypervolume(pts[pareto_mask(pts, dirs)], dirs, ref)

    first = hv(batches[0])
    assert hv([a for b in batches for a in b]) > first


@pytest.mark.slow
def test_bayesian_gp_sampler_is_valid_and_seeded() -> None:
    # The GP sampler costs seconds per proposal on a CPU: one small run, checked twice.
    space = ToySpace()
    opts = {"sampler": "gp", "n_startup_trials": 6, "batch_size": 4}

    def go() -> list[Arch]:
        s = make_searcher("bayesian", space, OBJS, seed=2, **opts)
        out: list[Arch] = []
        for _ in range(3):
            archs = s.ask(4)
            s.tell(archs, [evaluate(space, a) for a in archs])
            out += archs
        return out

    first = go()
    assert len({space.encode(a) for a in first}) == 12
    assert go() == first


# Every registered space, with small options (mbv3 as the 8x8 single-channel digits space).
REGISTERED: dict[str, dict[str, Any]] = {
    "mbv3": {"num_classes": 10, "in_channels": 1, "small_input": True, "resolutions": (8,)},
    "mlp": {"widths": (8, 16, 32, 48, 64, 96), "depths": (1, 2, 3, 4)},
    # The space fitted to digits (hybrid stem, patch 2, 8x8), with two resolutions.
    "vit": {
        "num_classes": 10,
        "in_channels": 1,
        "patch_size": 2,
        "resolutions": (6, 8),
        "embed_dims": (32, 48, 64),
        "depths": (2, 3, 4),
        "heads": (1, 2),
        "head_dim": 16,
        "mlp_ratios": (2, 3, 4),
        "pool": "mean",
        "stem_channels": 16,
    },
}


def test_every_registered_space_is_covered() -> None:
    assert set(REGISTERED) == set(list_spaces())


@pytest.mark.parametrize("space_id", sorted(REGISTERED))
@pytest.mark.parametrize("key", ["evolution", "linas"])
def test_proposals_vary_told_archs(key: str, space_id: str) -> None:
    # After the first population every proposal should be a variation of what was measured:
    # new, and a few genes (canonical genotype) from some told arch. Random archs would be ~27
    # of 46 genes away in mbv3.
    space = get_space(space_id, **REGISTERED[space_id])
    s = make_searcher(key, space, OBJS, seed=5, batch_size=BATCH, **OPTIONS[key])
    told: list[tuple[int, ...]] = []
    new, near = [], []
    for r in range(6):
        archs = s.ask(BATCH)
        genes = [space.encode(a) for a in archs]
        if r:  # the first batch is the (constraint-first, else uniform) first population
            t = np.asarray(told)
            for g in genes:
                new.append(g not in set(told))
                near.append(int((t != np.asarray(g)).sum(axis=1).min()) <= 4)
        s.tell(archs, [evaluate(space, a) for a in archs])
        told += genes
    assert np.mean(new) >= 0.9
    assert np.mean(near) >= 0.9
    assert s.state()["random_fill"] == 0


def test_small_space_is_exhausted_without_repeats() -> None:
    space = get_space("mlp", widths=(8, 16), depths=(1, 2))  # 6 archs in all
    s = make_searcher("evolution", space, OBJS, seed=0, population=2)
    got = []
    for _ in range(4):
        archs = s.ask(2)
        s.tell(archs, [evaluate(space, a) for a in archs])
        got += archs
    assert len(got) == 6
    assert len({space.encode(a) for a in got}) == 6
    assert s.ask(2) == []
