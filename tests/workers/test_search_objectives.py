"""Parsing of objectives and constraints, violations, bounds."""

from __future__ import annotations

import pytest

from workers.search import (
    Constraint,
    Objective,
    ObjectiveError,
    attach_bounds,
    parse_constraint,
    parse_objective,
    violation,
)
from workers.search.objectives import all_constraints


def test_parse_constraint_forms() -> None:
    assert parse_constraint("latency_ms<=5") == Constraint("latency_ms", "<=", 5.0)
    assert parse_constraint(" flops <= 50e6 ") == Constraint("flops", "<=", 50e6)
    assert parse_constraint("accuracy>=0.9") == Constraint("accuracy", ">=", 0.9)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("latency<=5", "unknown metric 'latency'"),
        ("latency_ms<5", "NAME<=NUMBER"),
        ("latency_ms<=fast", "not a number"),
        ("latency_ms<=inf", "finite"),
    ],
)
def test_parse_constraint_errors_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(ObjectiveError, match=needle):
        parse_constraint(text)


def test_parse_objective() -> None:
    assert parse_objective("accuracy:max") == Objective("accuracy", "max")
    assert parse_objective("latency_ms") == Objective("latency_ms", "min")
    with pytest.raises(ObjectiveError, match="'up'"):
        parse_objective("accuracy:up")
    with pytest.raises(ObjectiveError, match="unknown metric"):
        parse_objective("speed:max")


def test_violation_is_relative_and_zero_when_feasible() -> None:
    cons = [Constraint("latency_ms", "<=", 5.0), Constraint("accuracy", ">=", 0.8)]
    assert violation({"latency_ms": 4.0, "accuracy": 0.9}, cons) == 0.0
    assert violation({"latency_ms": 6.0, "accuracy": 0.9}, cons) == pytest.approx(0.2)
    assert violation({"latency_ms": 6.0, "accuracy": 0.6}, cons) == pytest.approx(0.2 + 0.25)
    with pytest.raises(ObjectiveError, match="lacks"):
        violation({"accuracy": 0.9}, cons)


def test_attach_bounds_moves_matching_constraints() -> None:
    objs = [Objective("accuracy", "max"), Objective("latency_ms", "min")]
    cons = [parse_constraint("latency_ms<=5"), parse_constraint("params<=1000")]
    o2, rest = attach_bounds(objs, cons)
    assert o2[1] == Objective("latency_ms", "min", 5.0)
    assert rest == [Constraint("params", "<=", 1000.0)]
    assert all_constraints(o2, rest) == [Constraint("latency_ms", "<=", 5.0), rest[0]]
    assert Objective("accuracy", "max", 0.5).constraint() == Constraint("accuracy", ">=", 0.5)
