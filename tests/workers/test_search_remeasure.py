"""Re-measurement of the Pareto front, with a deterministic stand-in for the device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from search_spaces import get_space
from search_spaces.base import Arch
from workers.search import Objective, format_table, parse_constraint, remeasure_front
from workers.search.remeasure import front_indices

OBJS = [Objective("accuracy", "max"), Objective("latency_ms", "min")]


def test_front_indices_prefers_feasible() -> None:
    evs = [
        {"accuracy": 0.9, "latency_ms": 9.0},
        {"accuracy": 0.8, "latency_ms": 4.0},
        {"accuracy": 0.7, "latency_ms": 3.0},
        {"accuracy": 0.6, "latency_ms": 3.5},
    ]
    assert front_indices(evs, OBJS) == [0, 1, 2]
    assert front_indices(evs, OBJS, [parse_constraint("latency_ms<=5")]) == [1, 2]
    # nothing feasible: the front of everything
    assert front_indices(evs, OBJS, [parse_constraint("latency_ms<=1")]) == [0, 1, 2]


def test_remeasure_reports_predicted_and_measured() -> None:
    space = get_space("mlp", widths=(8, 16, 32), depths=(1, 2))
    archs = [space.canonical({"depth": 1, "l1.width": w, "l2.width": 8}) for w in (8, 16, 32)]
    predicted = [
        {"accuracy": 0.70, "latency_ms": 1.0},
        {"accuracy": 0.80, "latency_ms": 2.0},
        {"accuracy": 0.90, "latency_ms": 3.0},
    ]
    # The device disagrees: the middle arch is really slower than the largest.
    truth = {8: 1.1, 16: 3.5, 32: 3.0}
    calls: list[int] = []

    def measure(xs: Sequence[Arch]) -> list[Mapping[str, float]]:
        calls.append(len(xs))
        return [{"latency_ms": truth[a["l1.width"]]} for a in xs]

    report = remeasure_front(space, OBJS, list(zip(archs, predicted, strict=True)), measure)
    assert calls == [3]
    assert [p.source for p in report.points] == ["measured"] * 3
    assert [p.predicted["latency_ms"] for p in report.points] == [1.0, 2.0, 3.0]
    assert [p.measured["latency_ms"] for p in report.points] == [1.1, 3.5, 3.0]
    # accuracy was not re-measured here, so the search value stands
    assert [p.measured["accuracy"] for p in report.points] == [0.7, 0.8, 0.9]
    assert [p.on_front for p in report.points] == [True, False, True]
    drift = report.drift()["latency_ms"]
    assert drift["max_rel"] == pytest.approx(1.5 / 3.5)
    assert drift["mean_rel"] == pytest.approx((0.1 / 1.1 + 1.5 / 3.5 + 0.0) / 3)
    table = format_table(report, space)
    lines = table.splitlines()
    assert lines[0].split() == [
        "#", "arch", "accuracy", "pred", "accuracy", "meas", "latency_ms", "pred",
        "latency_ms", "meas", "feasible", "front",
    ]  # fmt: skip
    assert len(lines) == 5
    assert "w16" in table and "3.5" in table
    doc = report.to_json()
    assert doc["points"][1]["on_front"] is False


def test_measure_must_answer_every_arch() -> None:
    space = get_space("mlp", widths=(8, 16), depths=(1,))
    cands = [(space.min_arch(), {"accuracy": 0.5, "latency_ms": 1.0})]
    with pytest.raises(ValueError, match="0 results for 1 archs"):
        remeasure_front(space, OBJS, cands, lambda xs: [])
