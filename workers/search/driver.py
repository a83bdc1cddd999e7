"""The search loop every caller shares: ask -> evaluate -> tell -> record, until the budget of
distinct architectures is spent or the searcher has nothing new to propose.

The job pipeline (``workers.pipeline.search``) records into the job's store and reports
progress, and stops on a cancel; the command line (``workers.search.cli``) keeps a history and
prints a line. Both build their searcher with :func:`build_searcher`, which hands a latency
lookup table to the searcher as its cheap ``latency_ms`` estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from search_spaces.base import SearchSpace
from workers.search.base import Searcher
from workers.search.factory import make_searcher
from workers.search.objectives import Objective

Arch = dict[str, int]
Evaluation = dict[str, float]
LatencyFn = Callable[[Mapping[str, int]], float]
EvaluateFn = Callable[[list[Arch]], list[Evaluation]]
RecordFn = Callable[[list[Arch], list[Evaluation]], None]
KeyFn = Callable[[Arch], Hashable]
Hook = Callable[[], None]

# Batches in a row that brought no new architecture before the loop gives up (a searcher
# that only proposes what was evaluated already).
MAX_STALLS = 3


def latency_estimate(latency: LatencyFn) -> Callable[[Sequence[Mapping[str, int]]], np.ndarray]:
    """A per-arch latency prediction as a searcher's batch ``estimates`` entry."""

    def latency_ms(archs: Sequence[Mapping[str, int]]) -> np.ndarray:
        return np.asarray([latency(a) for a in archs], dtype=float)

    return latency_ms


def build_searcher(
    algorithm: str,
    space: SearchSpace,
    objectives: Sequence[Objective],
    *,
    seed: int,
    batch_size: int,
    options: Mapping[str, Any] | None = None,
    population: int | None = None,
    latency: LatencyFn | None = None,
    **wiring: Any,
) -> Searcher:
    """The searcher for a search: the user's ``options`` (checked by the catalog's model),
    ``population`` for the searchers that have one, and with a latency lookup table its
    prediction as a cheap estimate, so the first population can hold archs near a latency
    bound. ``wiring`` (e.g. ``constraints``) goes to the constructor as given."""
    opts: dict[str, Any] = {"batch_size": batch_size, **dict(options or {}), **wiring}
    if population is not None and algorithm in ("evolution",):
        opts.setdefault("population", population)
    if latency is not None:
        opts["estimates"] = {"latency_ms": latency_estimate(latency)}
    return make_searcher(algorithm, space, objectives, seed=seed, **opts)


def run_search(
    searcher: Searcher,
    *,
    budget: int,
    batch: int,
    evaluate: EvaluateFn,
    record: RecordFn,
    key: KeyFn,
    seen: Iterable[Hashable] = (),
    before_ask: Hook | None = None,
    after_evaluate: Hook | None = None,
) -> int:
    """Run the loop; returns how many distinct architectures are evaluated in all.

    ``seen`` are the keys (``key(arch)``, e.g. the genotype) already evaluated, replayed into
    the searcher by the caller: they count towards ``budget`` and are never recorded again.
    ``record`` gets each batch's new architectures and their evaluations (possibly none). The
    hooks run before each ask and after each evaluation; raising there stops the search (the
    pipeline's cancel)."""
    done = set(seen)
    stalls = 0
    while len(done) < budget:
        if before_ask is not None:
            before_ask()
        archs = searcher.ask(min(batch, budget - len(done)))
        if not archs:
            break  # the space has no unseen architecture left
        evals = evaluate(archs)
        if after_evaluate is not None:
            after_evaluate()
        searcher.tell(archs, evals)
        new: list[Arch] = []
        new_evals: list[Evaluation] = []
        for a, ev in zip(archs, evals, strict=True):
            k = key(a)
            if k in done:
                continue
            done.add(k)
            new.append(a)
            new_evals.append(ev)
        stalls = 0 if new else stalls + 1
        if stalls > MAX_STALLS:
            break
        record(new, new_evals)
    return len(done)
