"""Bayesian multi-objective search with optuna (TPE or GP sampler) through ask/tell.

Each dimension is a categorical parameter. Optuna proposes raw archs; they are canonicalised,
and a proposal that lands on an arch already seen is told back to optuna at once as failed (the
samplers ignore failed trials) and another is drawn, so the same arch is never proposed twice.
The study is in memory; ``replay`` adds stored candidates with
``add_trial``. The sampler is rebuilt before each ``ask`` with a seed derived from the job seed and
the number of archs seen, so a replayed study continues exactly like an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, GPSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from search_spaces.base import Genotype, SearchSpace
from workers.search.base import Searcher
from workers.search.objectives import Constraint, Objective

_VIOLATIONS = "constraint_values"
SAMPLERS = ("tpe", "gp")


def _constraint_values(trial: FrozenTrial) -> Sequence[float]:
    return list(trial.user_attrs.get(_VIOLATIONS, [0.0]))


class BayesianSearcher(Searcher):
    name = "bayesian"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        seed: int = 0,
        constraints: Sequence[Constraint] = (),
        sampler: str = "tpe",
        n_startup_trials: int = 10,
        batch_size: int = 10,
        max_retries: int = 50,
    ):
        if sampler not in SAMPLERS:
            raise ValueError(f"bayesian sampler {sampler!r} is not known; use one of {SAMPLERS}")
        super().__init__(
            space, objectives, seed=seed, constraints=constraints, batch_size=batch_size
        )
        self.sampler_name = sampler
        self.n_startup_trials = n_startup_trials
        self.max_retries = max_retries
        optuna.logging.set_verbosity(logging.WARNING)
        self.distributions: dict[str, BaseDistribution] = {
            d.name: CategoricalDistribution(list(d.choices)) for d in space.dims
        }
        self.study = optuna.create_study(
            directions=["minimize" if o.direction == "min" else "maximize" for o in objectives],
            sampler=self._make_sampler(seed),
            storage=None,
        )
        self._pending: dict[Genotype, int | None] = {}  # genotype -> optuna trial number

    def _make_sampler(self, seed: int) -> BaseSampler:
        cf = _constraint_values if self.constraints else None
        if self.sampler_name == "gp":
            return GPSampler(
                seed=seed,
                n_startup_trials=self.n_startup_trials,
                constraints_func=cf,
                warn_independent_sampling=False,
            )
        return TPESampler(
            seed=seed,
            n_startup_trials=self.n_startup_trials,
            multivariate=True,
            constraints_func=cf,
            warn_independent_sampling=False,
        )

    def _values(self, ev: dict[str, float]) -> list[float]:
        return [float(ev[o.name]) for o in self.objectives]

    def _constraint_list(self, ev: dict[str, float]) -> list[float]:
        return [c.violation(ev) for c in self.constraints] or [0.0]

    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        self.study.sampler = self._make_sampler(int(rng.integers(2**31 - 1)))
        out: list[Genotype] = []
        retries = 0
        while len(out) < n and retries <= self.max_retries:
            trial = self.study.ask(self.distributions)
            g = self.space.encode({k: int(v) for k, v in trial.params.items()})
            if g in out or self.seen(g):
                retries += 1
                # Failed rather than re-told: failed trials do not shape the samplers, so a
                # replayed study (which never saw these repeats) behaves the same.
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            self._pending[g] = trial.number
            out.append(g)
        if len(out) < n:  # optuna keeps repeating itself: top up with uniform samples
            extra = self.sample_unseen(rng, n - len(out), set(out))
            for g in extra:
                self._pending[g] = None
            out += extra
        return out

    def _on_tell(self, genotypes: list[Genotype], evaluations: list[dict[str, float]]) -> None:
        for g, ev in zip(genotypes, evaluations, strict=True):
            number = self._pending.pop(g, None)
            cons = self._constraint_list(ev)
            if number is None:
                arch = self.space.decode(g)
                self.study.add_trial(
                    optuna.trial.create_trial(
                        params={k: arch[k] for k in self.distributions},
                        distributions=self.distributions,
                        values=self._values(ev),
                        user_attrs={_VIOLATIONS: cons},
                        system_attrs={"constraints": cons},
                    )
                )
            else:
                self.study._storage.set_trial_user_attr(
                    self.study._storage.get_trial_id_from_study_id_trial_number(
                        self.study._study_id, number
                    ),
                    _VIOLATIONS,
                    cons,
                )
                self.study.tell(number, self._values(ev))

    def state(self) -> dict[str, Any]:
        s = super().state()
        s["sampler"] = self.sampler_name
        s["trials"] = len(self.study.trials)
        return s
