"""Pareto masks, sorting, crowding and hypervolume against hand-computed numbers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from search_spaces import get_space
from workers.search import (
    Objective,
    ObjectiveError,
    hypervolume,
    pareto_mask,
    reference_point,
)
from workers.search.pareto import constrained_ranks, crowding_distance, non_dominated_ranks


def test_mask_mixed_directions() -> None:
    # accuracy (max), latency (min)
    pts = [[0.9, 5.0], [0.8, 3.0], [0.85, 6.0], [0.7, 3.0], [0.9, 4.0]]
    m = pareto_mask(pts, ["max", "min"])
    assert m.tolist() == [False, True, False, False, True]


def test_mask_duplicates_kept_or_unique() -> None:
    pts = [[1.0, 2.0], [1.0, 2.0], [2.0, 3.0]]
    assert pareto_mask(pts, ["min", "min"]).tolist() == [True, True, False]
    assert pareto_mask(pts, ["min", "min"], unique=True).tolist() == [True, False, False]


def test_mask_matches_brute_force_three_objectives() -> None:
    rng = np.random.default_rng(3)
    pts = rng.integers(0, 5, size=(60, 3)).astype(float)
    dirs = ["min", "max", "min"]
    f = pts * np.array([1, -1, 1])
    brute = [
        not any(np.all(f[j] <= f[i]) and np.any(f[j] < f[i]) for j in range(60)) for i in range(60)
    ]
    assert pareto_mask(pts, dirs).tolist() == brute


def test_ranks_and_constraint_domination() -> None:
    f = np.array([[1.0, 4.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0], [0.0, 0.0]])
    assert non_dominated_ranks(f).tolist() == [1, 1, 2, 3, 0]
    viol = np.array([0.0, 0.0, 0.0, 0.0, 0.5])  # the best point breaks a constraint
    assert constrained_ranks(f, viol).tolist() == [0, 0, 1, 2, 3]
    viol2 = np.array([0.0, 0.2, 0.1, 0.0, 0.2])
    # feasible: 0 and 3 (0 dominates 3); infeasible by violation: 2 (0.1), then 1 and 4 (0.2)
    assert constrained_ranks(f, viol2).tolist() == [0, 3, 2, 1, 3]


def test_crowding_distance() -> None:
    f = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(f)
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert d[1] == pytest.approx(3 / 4 + 3 / 4)
    assert d[2] == pytest.approx(3 / 4 + 2 / 4)


def test_hypervolume_2d_hand_checked() -> None:
    pts = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.5, 3.5]]
    # staircase below ref (4,4): 3*1 + 2*1 + 1*1 = 6 ... computed column by column
    assert hypervolume(pts, ["min", "min"], [4.0, 4.0]) == pytest.approx(6.0)
    # accuracy max with ref 0, latency min with ref 10
    assert hypervolume([[0.5, 4.0], [0.8, 8.0]], ["max", "min"], [0.0, 10.0]) == pytest.approx(
        0.5 * 6 + 0.3 * 2
    )
    # points outside the reference box add nothing; empty input is 0
    assert hypervolume([[5.0, 1.0]], ["min", "min"], [4.0, 4.0]) == 0.0
    assert hypervolume(np.zeros((0, 2)), ["min", "min"], [4.0, 4.0]) == 0.0


def test_hypervolume_3d_hand_checked_and_monte_carlo() -> None:
    # Two unit-offset boxes: [0,2]^3 minus overlap with [1,3]x[1,3]x[0,3]... ref (3,3,3)
    pts = [[1.0, 1.0, 1.0]]
    assert hypervolume(pts, ["min"] * 3, [3.0, 3.0, 3.0]) == pytest.approx(8.0)
    pts = [[1.0, 2.0, 2.0], [2.0, 1.0, 2.0], [2.0, 2.0, 1.0]]
    # each box is 2*1*1 = 2 ... union = 3 boxes of volume 2 overlapping pairwise in 1*1*1,
    # triple overlap 1: 6 - 3 + 1 = 4
    assert hypervolume(pts, ["min"] * 3, [3.0, 3.0, 3.0]) == pytest.approx(4.0)
    rng = np.random.default_rng(0)
    pts = rng.random((12, 3))
    exact = hypervolume(pts, ["min"] * 3, [1.0, 1.0, 1.0])
    samples = rng.random((200_000, 3))
    covered = np.zeros(len(samples), dtype=bool)
    for p in pts:
        covered |= np.all(samples >= p, axis=1)
    assert exact == pytest.approx(covered.mean(), abs=0.01)


def test_hypervolume_4d_exact_against_inclusion_exclusion() -> None:
    rng = np.random.default_rng(1)
    pts = rng.random((5, 4))
    ref = np.ones(4)
    total = 0.0
    for k in range(1, 6):
        for combo in itertools.combinations(range(5), k):
            corner = pts[list(combo)].max(axis=0)
            total += (-1) ** (k + 1) * float(np.prod(ref - corner))
    assert hypervolume(pts, ["min"] * 4, ref) == pytest.approx(total)


def test_reference_point_choices() -> None:
    space = get_space("mlp")
    objs = [Objective("accuracy", "max"), Objective("flops", "min"), Objective("params", "min")]
    big = space.max_arch()
    ref = reference_point(objs, space)
    assert ref == pytest.approx([0.0, space.flops(big) * 1.1, space.params(big) * 1.1])
    lat = [Objective("latency_ms", "min")]
    assert reference_point(lat, space, latency_fn=lambda a: 2.0) == pytest.approx([2.2])
    with pytest.raises(ObjectiveError, match="latency_fn"):
        reference_point(lat, space)
    assert reference_point(lat, space, overrides={"latency_ms": 7.0}) == [7.0]


def test_bad_shapes_are_clear() -> None:
    with pytest.raises(ObjectiveError, match="expected"):
        pareto_mask([[1.0, 2.0, 3.0]], ["min", "min"])
    with pytest.raises(ObjectiveError, match="direction"):
        pareto_mask([[1.0, 2.0]], ["min", "up"])
