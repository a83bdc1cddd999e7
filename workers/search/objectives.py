"""Objectives and constraints of a search, and constraint-domination.

An evaluation is a plain dict of metric name -> number (``accuracy``, ``loss``, ``latency_ms``,
``flops``, ``params``). An :class:`Objective` names one metric to minimise or maximise; its
optional ``bound`` is a constraint in the same direction (``latency_ms`` min with bound 5 means
``latency_ms <= 5``). A :class:`Constraint` bounds any metric, optimised or not.

Infeasible candidates rank behind every feasible one; among themselves they rank by total
violation (relative to the bound, so metrics of different scales add up sensibly).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["min", "max"]


def known_metrics() -> dict[str, Direction]:
    """Metrics the searchers and the CLI understand, with their natural direction: the
    catalog's objectives, plus the validation loss every evaluation reports."""
    from nas_service.catalog import objectives

    out: dict[str, Direction] = {"loss": "min"}
    for name in objectives.names():
        out[name] = "max" if objectives.direction(name) == "max" else "min"
    return out


class ObjectiveError(ValueError):
    """A user-given objective or constraint that cannot be understood."""


@dataclass(frozen=True)
class Objective:
    name: str
    direction: Direction
    bound: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ObjectiveError(
                f"objective '{self.name}': direction {self.direction!r} is not allowed; "
                "use 'min' or 'max'"
            )
        if self.bound is not None and not math.isfinite(float(self.bound)):
            raise ObjectiveError(f"objective '{self.name}': bound must be finite, got {self.bound}")

    @property
    def sign(self) -> float:
        """Multiplier that turns the metric into a quantity to minimise."""
        return 1.0 if self.direction == "min" else -1.0

    def constraint(self) -> Constraint | None:
        if self.bound is None:
            return None
        return Constraint(self.name, "<=" if self.direction == "min" else ">=", float(self.bound))

    def __str__(self) -> str:
        return f"{self.name}:{self.direction}"


@dataclass(frozen=True)
class Constraint:
    name: str
    op: Literal["<=", ">="]
    value: float

    def violation(self, evaluation: Mapping[str, float]) -> float:
        """0 when satisfied, else the overshoot relative to ``max(|value|, 1e-12)``."""
        if self.name not in evaluation:
            raise ObjectiveError(
                f"constraint '{self}' needs metric '{self.name}', which the evaluation lacks "
                f"(it has {sorted(evaluation)})"
            )
        v = float(evaluation[self.name])
        over = v - self.value if self.op == "<=" else self.value - v
        if math.isnan(v):
            return math.inf
        return max(0.0, over) / max(abs(self.value), 1e-12)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*([^\s]+)\s*$")


def parse_constraint(text: str) -> Constraint:
    """Parse ``"latency_ms<=5"`` or ``"flops <= 50e6"`` or ``"accuracy>=0.9"``."""
    m = _CONSTRAINT_RE.match(text)
    if not m:
        raise ObjectiveError(
            f"constraint {text!r} is not understood; write NAME<=NUMBER or NAME>=NUMBER, "
            f"e.g. 'latency_ms<=5' (metrics: {sorted(known_metrics())})"
        )
    name, op, raw = m.groups()
    _check_metric(name, text)
    try:
        value = float(raw)
    except ValueError:
        raise ObjectiveError(f"constraint {text!r}: bound {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ObjectiveError(f"constraint {text!r}: bound must be finite")
    return Constraint(name, "<=" if op == "<=" else ">=", value)


def parse_objective(text: str) -> Objective:
    """Parse ``"accuracy:max"`` or ``"latency_ms:min"``; a bare name takes its usual direction."""
    name, _, direction = text.strip().partition(":")
    name = name.strip()
    _check_metric(name, text)
    d = direction.strip() or known_metrics()[name]
    if d not in ("min", "max"):
        raise ObjectiveError(
            f"objective {text!r}: direction {d!r} is not allowed; use 'min' or 'max'"
        )
    return Objective(name, "min" if d == "min" else "max")


def _check_metric(name: str, text: str) -> None:
    if name not in known_metrics():
        raise ObjectiveError(
            f"{text!r}: unknown metric '{name}'; known metrics are {sorted(known_metrics())}"
        )


def attach_bounds(
    objectives: Sequence[Objective], constraints: Sequence[Constraint]
) -> tuple[list[Objective], list[Constraint]]:
    """Move a constraint onto its objective as a bound when the direction agrees.

    Returns the objectives (some now bounded) and the constraints that stay separate (on metrics
    that are not optimised, or bounding against the objective's direction).
    """
    objs = list(objectives)
    rest: list[Constraint] = []
    for c in constraints:
        for i, o in enumerate(objs):
            same_way = (o.direction == "min") == (c.op == "<=")
            if o.name == c.name and same_way and o.bound is None:
                objs[i] = Objective(o.name, o.direction, c.value)
                break
        else:
            rest.append(c)
    return objs, rest


def all_constraints(
    objectives: Sequence[Objective], constraints: Sequence[Constraint] = ()
) -> list[Constraint]:
    out = [c for o in objectives if (c := o.constraint()) is not None]
    return out + list(constraints)


def violation(evaluation: Mapping[str, float], constraints: Sequence[Constraint]) -> float:
    """Total relative violation; 0 means feasible."""
    return float(sum(c.violation(evaluation) for c in constraints))


def objective_matrix(
    evaluations: Sequence[Mapping[str, float]], objectives: Sequence[Objective]
) -> np.ndarray:
    """(n, m) array of raw objective values, in the objectives' order."""
    out = np.empty((len(evaluations), len(objectives)), dtype=float)
    for i, ev in enumerate(evaluations):
        for j, o in enumerate(objectives):
            if o.name not in ev:
                raise ObjectiveError(
                    f"objective '{o.name}' is missing from evaluation {i} (it has {sorted(ev)})"
                )
            out[i, j] = float(ev[o.name])
    return out


def to_minimisation(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Flip the sign of maximised columns so every column is minimised."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(directions):
        raise ObjectiveError(
            f"values have shape {v.shape}; expected (n, {len(directions)}) for directions "
            f"{list(directions)}"
        )
    signs = []
    for d in directions:
        if d not in ("min", "max"):
            raise ObjectiveError(f"direction {d!r} is not allowed; use 'min' or 'max'")
        signs.append(1.0 if d == "min" else -1.0)
    return v * np.asarray(signs)
