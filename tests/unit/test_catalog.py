"""Every catalog entry is one the workers can run: its implementation resolves, its options
model matches what the implementation takes, its facts are well formed. New entries are
covered by registering them."""

from __future__ import annotations

import inspect

import pytest

from nas_service.catalog import CATALOG, resolve
from nas_service.catalog import training as catalog_training
from search_spaces import get_space
from workers.data import load_dataset
from workers.pipeline.work import train_config
from workers.search.base import Searcher


@pytest.mark.parametrize("name", CATALOG.names("searcher"))
def test_each_searcher_takes_exactly_its_options(name: str) -> None:
    entry = CATALOG.get("searcher", name)
    cls = resolve(entry)
    assert issubclass(cls, Searcher)
    params = inspect.signature(cls.__init__).parameters
    assert entry.options is not None
    missing = set(entry.options.model_fields) - set(params)
    assert not missing, f"{name}: options the constructor does not take: {missing}"


@pytest.mark.parametrize("name", CATALOG.names("export"))
def test_each_export_format_names_its_writer(name: str) -> None:
    entry = CATALOG.get("export", name)
    assert callable(resolve(entry))
    assert entry.info["suffix"] and 0 <= entry.info["tolerance"] < 1e-2
    assert entry.info["artifact_kind"].startswith("subnet_")


@pytest.mark.parametrize("name", CATALOG.names("objective"))
def test_each_objective_has_a_direction_and_a_bound_rule(name: str) -> None:
    info = CATALOG.get("objective", name).info
    assert info["direction"] in ("min", "max") and info["bound"] in ("fraction", "positive")


@pytest.mark.parametrize(
    ("sampler", "policy"),
    [(e.name, p) for e in CATALOG.entries("sampler") for p in e.info["policies"]],
)
def test_each_sampler_policy_sets_the_trainer_config(sampler: str, policy: str) -> None:
    data = load_dataset("digits", seed=0)
    space = get_space("mlp", in_features=64, num_classes=10, widths=[16, 32], depths=[1, 2])
    cfg = train_config(space, data, {"sampler": sampler, "sampler_policy": policy})
    want = catalog_training.policy_settings(sampler, policy)
    assert cfg.sampler.name == sampler
    assert {k: getattr(cfg.sampler, k) for k in want} == want


@pytest.mark.parametrize("preset", CATALOG.names("training_preset"))
def test_each_preset_scales_the_default_schedule(preset: str) -> None:
    from workers.training import default_config

    data = load_dataset("digits", seed=0)
    space = get_space("mlp", in_features=64, num_classes=10, widths=[16, 32], depths=[1, 2])
    cfg = train_config(space, data, {"preset": preset})
    want = default_config(space, data).scaled(catalog_training.preset_scale(preset))
    assert [p.epochs for p in cfg.phases] == [p.epochs for p in want.phases]
