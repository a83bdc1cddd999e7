"""Subnet samplers: quantile bins, fresh in-bin archs, policies, best-of-k, checkpointable state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search_spaces import SearchSpace, get_space
from workers.training.samplers import (
    ComplexityAwareSampler,
    SamplerConfig,
    SubnetSampler,
    UniformSampler,
    make_sampler,
    quantile_edges,
)

BINS = 8


@pytest.fixture(scope="module")
def mbv3() -> SearchSpace:
    # The digits-sized space of the product (about 10^19 archs): every dimension elastic.
    return get_space("mbv3", num_classes=10, in_channels=1, small_input=True, resolutions=(8,))


@pytest.fixture(scope="module")
def ca(mbv3: SearchSpace) -> ComplexityAwareSampler:
    return ComplexityAwareSampler(mbv3, SamplerConfig(bins=BINS), seed=0)


@pytest.fixture(scope="module")
def small() -> SearchSpace:
    # Six archs: the sandwich ends hold a third of the uniform mass here.
    return get_space("mlp", in_features=4, num_classes=2, widths=(8, 16), depths=(1, 2))


def _draw(sampler: SubnetSampler, n: int) -> list[dict[str, int]]:
    out = []
    for _ in range(n):
        (arch,) = sampler.propose()
        sampler.accept(arch, 1.0)
        out.append(arch)
    return out


def _shares(sampler: SubnetSampler, flops: list[float]) -> np.ndarray:
    bins = np.asarray([sampler.bin_of(f) for f in flops])
    return np.bincount(bins, minlength=sampler.num_bins) / len(flops)


def test_bins_are_quantiles_of_the_space(mbv3: SearchSpace, ca: ComplexityAwareSampler) -> None:
    assert ca.num_bins == BINS and ca.active == list(range(BINS))
    assert ca.edges[0] == mbv3.flops(mbv3.min_arch())
    assert ca.edges[-1] == mbv3.flops(mbv3.max_arch())
    assert np.all(np.diff(ca.edges) > 0)
    # Fresh uniform archs (another generator than the one that set the edges).
    rng = np.random.default_rng(123)
    flops = [float(mbv3.flops(mbv3.sample(rng))) for _ in range(2000)]
    shares = _shares(ca, flops)
    assert shares.min() >= 0.5 / BINS and shares.max() <= 2.0 / BINS, shares
    # The baseline sampler logs its histogram over the same quantile edges (same seed).
    uni = UniformSampler(mbv3, SamplerConfig(name="uniform", bins=BINS), seed=0)
    assert np.array_equal(uni.edges, ca.edges)


def test_quantile_edges_merge_repeated_values() -> None:
    edges = quantile_edges(np.array([1.0] * 50 + [3.0] * 50), 8, 1.0, 5.0)
    assert edges[0] == 1.0 and edges[-1] == 5.0 and np.all(np.diff(edges) > 0)
    assert np.array_equal(quantile_edges(np.array([]), 8, 2.0, 2.0), [2.0, 3.0])


def test_never_returns_the_sandwich_ends(
    mbv3: SearchSpace, ca: ComplexityAwareSampler, small: SearchSpace
) -> None:
    ends = [mbv3.min_arch(), mbv3.max_arch()]
    archs = _draw(ca, 1000)
    assert not any(a in ends for a in archs)
    assert len({mbv3.encode(a) for a in archs}) > 990  # fresh archs, not a pool
    # The ends of a phase view are those of the view (here: kernels 3..7 fixed at 3).
    view = mbv3.restrict(kernel=(3,))
    s = ComplexityAwareSampler(view, SamplerConfig(bins=BINS, edge_samples=500), seed=1)
    assert not any(a in (view.min_arch(), view.max_arch()) for a in _draw(s, 300))
    # Where the ends are frequent, rejection still skips them; so does the fallback.
    for tries in (200, 1):
        cfg = SamplerConfig(bins=4, edge_samples=200, rejection_tries=tries)
        t = ComplexityAwareSampler(small, cfg, seed=2)
        drawn = _draw(t, 1000)
        assert not any(a in (small.min_arch(), small.max_arch()) for a in drawn)
        assert len({small.encode(a) for a in drawn}) == 4  # every other arch is reachable


def test_uniform_policy_gives_every_bin_its_share(mbv3: SearchSpace) -> None:
    s = ComplexityAwareSampler(mbv3, SamplerConfig(bins=BINS), seed=4)
    archs = _draw(s, 1000)
    counts = np.asarray(s.histogram()["counts"])
    assert counts.sum() == 1000
    # 125 expected per bin; +-40% is over 4 standard deviations.
    assert counts.min() >= 0.6 * 1000 / BINS and counts.max() <= 1.4 * 1000 / BINS, counts
    # Rejection sampling lands in the drawn target bin (checked on the last one).
    assert s.bin_of(mbv3.flops(archs[-1])) == s.target


def test_walk_moves_at_most_one_bin_per_step(mbv3: SearchSpace) -> None:
    s = ComplexityAwareSampler(mbv3, SamplerConfig(policy="walk", bins=BINS), seed=1)
    positions = []
    for _ in range(600):
        (arch,) = s.propose()
        assert s.bin_of(mbv3.flops(arch)) == s.target
        positions.append(s.target)
    steps = np.abs(np.diff(positions))
    assert steps.max() == 1 and (steps == 0).any()
    # The walk still covers the whole range.
    assert min(positions) == 0 and max(positions) == BINS - 1


def test_adaptive_follows_a_deterministic_probe_signal(mbv3: SearchSpace) -> None:
    cfg = SamplerConfig(policy="adaptive", bins=BINS, temperature=0.02, floor=0.2, ema=0.5)
    s = ComplexityAwareSampler(mbv3, cfg, seed=2)
    probes = s.probe_archs
    assert len(probes) == BINS * cfg.probes_per_bin
    # Fixed archs, probes_per_bin in each bin, never an end; the same for the same seed.
    bins = [s.bin_of(mbv3.flops(a)) for a in probes]
    assert bins == sorted(bins) and set(bins) == set(range(BINS))
    assert all(a not in (mbv3.min_arch(), mbv3.max_arch()) for a in probes)
    assert ComplexityAwareSampler(mbv3, cfg, seed=2).probe_archs == probes
    assert [s.probe_due(k) for k in range(0, 25, 5)] == [True, False, True, False, True]
    assert not UniformSampler(mbv3, cfg, seed=2).probe_due(0)

    def feed(improving: int, rounds: int, losses: np.ndarray) -> None:
        for _ in range(rounds):
            losses[improving] *= 0.9  # one bin keeps improving, the others are flat
            s.observe_probe([float(losses[b]) for b in bins])

    losses = np.full(BINS, 2.0)
    feed(0, 1, losses)
    # One round is no decrease yet: still uniform.
    assert np.allclose(s.probabilities(), 1.0 / BINS)
    feed(0, 5, losses)
    p = s.probabilities()
    assert p.argmax() == 0 and p[0] > 0.5
    assert p.min() >= 0.2 / BINS - 1e-12  # the floor keeps every bin alive
    assert np.isclose(p.sum(), 1.0)
    draws = [s._next_bin() for _ in range(400)]
    assert np.mean(np.asarray(draws) == 0) > 0.4
    # When bin 0 stops improving and the top bin starts, the preference follows.
    feed(BINS - 1, 6, losses)
    assert s.probabilities().argmax() == BINS - 1
    with pytest.raises(ValueError, match="probe losses"):
        s.observe_probe([1.0])


def test_best_of_k_candidates_share_the_target_bin(mbv3: SearchSpace) -> None:
    s = ComplexityAwareSampler(mbv3, SamplerConfig(best_of=3, edge_samples=500), seed=3)
    for _ in range(8):
        cands = s.propose()
        assert len(cands) == 3
        assert {s.bin_of(mbv3.flops(a)) for a in cands} == {s.target}
    u = UniformSampler(mbv3, SamplerConfig(name="uniform", best_of=3, edge_samples=50), seed=3)
    assert len(u.propose()) == 3


@pytest.mark.parametrize(
    ("name", "policy"),
    [("complexity-aware", "uniform"), ("complexity-aware", "walk"),
     ("complexity-aware", "adaptive"), ("uniform", "uniform")],
)  # fmt: skip
def test_state_round_trip_continues_identically(mbv3: SearchSpace, name: str, policy: str) -> None:
    cfg = SamplerConfig(name=name, policy=policy, edge_samples=300, probe_every=3)  # type: ignore[arg-type]
    a = make_sampler(mbv3, cfg, seed=5)

    def step(s: SubnetSampler, i: int) -> dict[str, int]:
        if s.probe_due(i):
            s.observe_probe([2.0 - 0.01 * i - 0.001 * k for k in range(len(s.probe_archs))])
        (arch,) = s.propose()
        s.accept(arch, 2.0 - 0.01 * i)
        return arch

    for i in range(15):
        step(a, i)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-safe, as stored in checkpoints
    with pytest.raises(ValueError, match="seed"):
        make_sampler(mbv3, cfg, seed=99).load_state_dict(state)
    b = make_sampler(mbv3, cfg, seed=5)
    b.load_state_dict(state)
    for i in range(15, 30):
        assert step(a, i) == step(b, i)
    assert a.histogram() == b.histogram()
    assert a.state_dict() == b.state_dict()
    other = "uniform" if name != "uniform" else "complexity-aware"
    with pytest.raises(ValueError, match="sampler state is for"):
        make_sampler(mbv3, cfg.model_copy(update={"name": other}), seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="other FLOPs bins"):
        make_sampler(mbv3.restrict(kernel=(3,)), cfg, seed=5).load_state_dict(state)


def test_single_arch_space_degenerates_gracefully() -> None:
    mlp = get_space("mlp", in_features=4, num_classes=2)
    only = mlp.restrict(depth=(3,), width=(256,))
    s = ComplexityAwareSampler(only, SamplerConfig(policy="adaptive", edge_samples=20), seed=0)
    (arch,) = s.propose()
    assert arch == only.max_arch() == s.middle  # nothing else to return
    assert s.active == [] and s.probe_archs == [] and not s.probe_due(0)
    two = get_space("mlp", in_features=4, num_classes=2, widths=(8,), depths=(1, 2))
    w = ComplexityAwareSampler(two, SamplerConfig(policy="walk", edge_samples=20), seed=0)
    assert all(a in (two.min_arch(), two.max_arch()) for a in _draw(w, 5))
