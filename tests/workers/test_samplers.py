"""Subnet samplers: FLOPs coverage, bin policies, best-of-k and checkpointable state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search_spaces import get_space
from workers.training.samplers import (
    ComplexityAwareSampler,
    SamplerConfig,
    UniformSampler,
    make_sampler,
)


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    # Expand and depth only (kernel fixed) keeps FLOPs evaluation cheap and the range wide.
    full = get_space("mbv3", num_classes=10, in_channels=1, small_input=True, resolutions=(8,))
    return full.restrict(kernel=(3,))


def _draw(sampler, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    for _ in range(n):
        (arch,) = sampler.propose()
        sampler.accept(arch, 1.0)
    return np.asarray(sampler.histogram()["counts"])


def test_complexity_aware_covers_extreme_bins_more_evenly_than_uniform(space) -> None:  # type: ignore[no-untyped-def]
    cfg = SamplerConfig(bins=8, pool_size=600)
    uni = _draw(UniformSampler(space, cfg.model_copy(update={"name": "uniform"}), seed=0), 800)
    cax = _draw(ComplexityAwareSampler(space, cfg, seed=0), 800)
    assert uni.sum() == cax.sum() == 800
    # Same edges: both build them from the same seeded pool.
    edges_u = UniformSampler(space, cfg, seed=0).edges
    edges_c = ComplexityAwareSampler(space, cfg, seed=0).edges
    assert np.allclose(edges_u, edges_c)
    # Uniform per-dimension sampling piles up in the middle bins ...
    extremes_u = uni[[0, 1, -2, -1]].sum()
    extremes_c = cax[[0, 1, -2, -1]].sum()
    assert extremes_c > 2 * extremes_u
    # ... complexity-aware is far closer to flat over the non-empty bins.
    nz = cax > 0
    assert cax[nz].std() / cax[nz].mean() < 0.5 * uni[nz].std() / uni[nz].mean()


def test_walk_moves_at_most_one_bin(space) -> None:  # type: ignore[no-untyped-def]
    s = ComplexityAwareSampler(space, SamplerConfig(policy="walk", pool_size=300), seed=1)
    positions = []
    for _ in range(300):
        (arch,) = s.propose()
        assert s.bin_of(space.flops(arch)) == s.target
        positions.append(s.nonempty.index(s.target))
    steps = np.abs(np.diff(positions))
    assert steps.max() == 1 and (steps == 0).any()
    # The walk still reaches both ends of the range.
    assert min(positions) == 0 and max(positions) == len(s.nonempty) - 1


def test_adaptive_prefers_bins_that_still_improve(space) -> None:  # type: ignore[no-untyped-def]
    cfg = SamplerConfig(policy="adaptive", pool_size=300, temperature=0.02, floor=0.2)
    s = ComplexityAwareSampler(space, cfg, seed=2)
    p0 = s.probabilities()
    assert np.allclose(p0[s.nonempty], 1.0 / len(s.nonempty))
    improving = s.nonempty[0]
    losses = {b: 2.0 for b in s.nonempty}
    for _ in range(40):
        for b in s.nonempty:
            arch = s.pool[int(s.members[b][0])]
            losses[b] = losses[b] * (0.9 if b == improving else 1.0)
            s.accept(arch, losses[b])
    p = s.probabilities()
    assert p.argmax() == improving and p[improving] > 0.5
    # The floor keeps every bin alive.
    assert p[s.nonempty].min() >= 0.2 / len(s.nonempty) - 1e-12
    draws = [s._next_bin() for _ in range(400)]
    assert np.mean(np.asarray(draws) == improving) > 0.4


def test_best_of_k_candidates_share_the_target_bin_and_rejection_stays_in_bin(space) -> None:  # type: ignore[no-untyped-def]
    cfg = SamplerConfig(best_of=3, per_bin="rejection", pool_size=300)
    s = ComplexityAwareSampler(space, cfg, seed=3)
    for _ in range(8):
        cands = s.propose()
        assert len(cands) == 3
        assert {s.bin_of(space.flops(a)) for a in cands} == {s.target}
    u = UniformSampler(space, cfg.model_copy(update={"name": "uniform"}), seed=3)
    assert len(u.propose()) == 3


@pytest.mark.parametrize("policy", ["uniform", "walk", "adaptive"])
def test_state_round_trip_continues_identically(space, policy: str) -> None:  # type: ignore[no-untyped-def]
    cfg = SamplerConfig(policy=policy, pool_size=200)
    a = make_sampler(space, cfg, seed=5)
    for i in range(15):
        (arch,) = a.propose()
        a.accept(arch, 2.0 - 0.01 * i)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-safe, as stored in checkpoints
    with pytest.raises(ValueError, match="seed"):
        make_sampler(space, cfg, seed=99).load_state_dict(state)
    b = make_sampler(space, cfg, seed=5)
    b.load_state_dict(state)
    for i in range(10):
        (xa,), (xb,) = a.propose(), b.propose()
        assert xa == xb
        a.accept(xa, 1.0 + i)
        b.accept(xb, 1.0 + i)
    assert a.histogram() == b.histogram()
    with pytest.raises(ValueError, match="sampler state is for"):
        make_sampler(space, cfg.model_copy(update={"name": "uniform"}), seed=0).load_state_dict(
            state
        )


def test_single_arch_space_degenerates_gracefully() -> None:
    mlp = get_space("mlp", in_features=4, num_classes=2)
    only = mlp.restrict(depth=(3,), width=(256,))
    s = ComplexityAwareSampler(only, SamplerConfig(pool_size=20), seed=0)
    (arch,) = s.propose()
    assert arch == only.max_arch()
