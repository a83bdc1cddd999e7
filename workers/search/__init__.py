"""Multi-objective search: objectives and constraints, Pareto utilities, ask/tell searchers."""

from workers.search.base import Searcher
from workers.search.factory import SEARCHERS, UnknownSearcher, make_searcher
from workers.search.objectives import (
    Constraint,
    Objective,
    ObjectiveError,
    attach_bounds,
    known_metrics,
    parse_constraint,
    parse_objective,
    violation,
)
from workers.search.pareto import hypervolume, pareto_mask, reference_point
from workers.search.remeasure import FrontPoint, FrontReport, format_table, remeasure_front

__all__ = [
    "SEARCHERS",
    "Constraint",
    "FrontPoint",
    "FrontReport",
    "Objective",
    "ObjectiveError",
    "Searcher",
    "UnknownSearcher",
    "attach_bounds",
    "format_table",
    "hypervolume",
    "known_metrics",
    "make_searcher",
    "pareto_mask",
    "parse_constraint",
    "parse_objective",
    "reference_point",
    "remeasure_front",
    "violation",
]
