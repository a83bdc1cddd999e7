"""Contract every accuracy predictor honours: shapes, save/load round trip, rank quality on a
learnable synthetic target, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from search_spaces import get_space
from search_spaces.base import Arch, SearchSpace
from workers.predictors import (
    Predictor,
    PredictorError,
    load_predictor,
    make_predictor,
    predictor_kinds,
    quality_report,
    select_accuracy_predictor,
)

FAST: dict[str, dict[str, Any]] = {
    "ridge": {},
    "latency_ridge": {},
    "gp": {},
    "mlp": {"members": 3, "hidden": (64, 64), "epochs": 200},
}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return get_space("mlp", widths=(8, 16, 32, 48, 64, 96, 128), depths=(1, 2, 3, 4))


def target(space: SearchSpace, archs: list[Arch]) -> np.ndarray:
    """Saturating in size with a per-layer-width bonus: learnable, not linear in one-hot."""
    big = space.flops(space.max_arch())
    out = []
    for a in archs:
        w = [a[f"l{j}.width"] for j in range(1, a["depth"] + 1)]
        out.append(1 - np.exp(-3 * space.flops(a) / big) + 0.05 * np.log(w[0]))
    return np.asarray(out)


@pytest.fixture(scope="module")
def data(space: SearchSpace) -> tuple[list[Arch], np.ndarray, list[Arch], np.ndarray]:
    rng = np.random.default_rng(0)
    seen: dict[tuple[int, ...], Arch] = {}
    while len(seen) < 260:
        a = space.sample(rng)
        seen.setdefault(space.encode(a), a)
    archs = list(seen.values())
    y = target(space, archs)
    return archs[:160], y[:160], archs[160:], y[160:]


def test_every_kind_is_covered() -> None:
    assert set(FAST) == set(predictor_kinds())


@pytest.mark.parametrize("kind", sorted(FAST))
def test_fit_predict_shapes_quality_and_round_trip(
    kind: str, space: SearchSpace, data: Any, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    xtr, ytr, xte, yte = data
    model = make_predictor(kind, space, seed=0, **FAST[kind])
    assert model.fit(xtr, ytr) is model
    pred = model.predict(xte)
    assert isinstance(pred, np.ndarray) and pred.shape == (len(xte),)
    mean, std = model.predict(xte, return_std=True)
    assert mean.shape == std.shape == (len(xte),)
    assert np.allclose(mean, pred) and np.all(std >= 0)
    report = quality_report(yte, pred)
    assert report["kendall_tau"] > 0.75, report
    path = model.save(tmp_path / f"{kind}.npz")
    loaded = load_predictor(path)
    assert type(loaded) is type(model)
    assert np.allclose(loaded.predict(xte), pred, atol=1e-6)
    assert np.allclose(Predictor.load(path).predict(xte, return_std=True)[1], std, atol=1e-6)
    again = make_predictor(kind, space, seed=0, **FAST[kind]).fit(xtr, ytr)
    assert np.allclose(again.predict(xte), pred, atol=1e-6)  # seeded


def test_uncertainty_models_report_spread(space: SearchSpace, data: Any) -> None:
    xtr, ytr, xte, _ = data
    for kind in ("gp", "mlp"):
        _, std = make_predictor(kind, space, **FAST[kind]).fit(xtr, ytr).predict(xte, True)
        assert float(np.mean(std)) > 0


def test_errors_are_clear(space: SearchSpace, data: Any, tmp_path: Path) -> None:
    xtr, ytr, _, _ = data
    with pytest.raises(PredictorError, match="unknown predictor 'forest'"):
        make_predictor("forest", space)
    model = make_predictor("ridge", space)
    with pytest.raises(PredictorError, match="not fitted"):
        model.predict(xtr)
    with pytest.raises(PredictorError, match="3 archs but 2 targets"):
        model.fit(xtr[:3], ytr[:2])
    with pytest.raises(PredictorError, match="NaN"):
        model.fit(xtr[:3], [0.1, float("nan"), 0.2])
    with pytest.raises(PredictorError, match="does not exist"):
        load_predictor(tmp_path / "missing.npz")
    np.savez(tmp_path / "odd.npz", meta=np.asarray('{"kind": "forest"}'))
    with pytest.raises(PredictorError, match="unknown predictor kind 'forest'"):
        load_predictor(tmp_path / "odd.npz")


def test_quality_report_numbers() -> None:
    r = quality_report([1.0, 2.0, 3.0, 4.0], [1.05, 1.9, 3.2, 5.0])
    assert r["kendall_tau"] == pytest.approx(1.0)
    assert r["spearman_rho"] == pytest.approx(1.0)
    assert r["mae"] == pytest.approx((0.05 + 0.1 + 0.2 + 1.0) / 4)
    assert r["mape"] == pytest.approx(100 * (0.05 + 0.05 + 0.2 / 3 + 0.25) / 4)
    assert r["within_10pct"] == pytest.approx(0.75)
    r = quality_report([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    assert r["kendall_tau"] == pytest.approx(-1.0)


def test_selection_picks_lowest_held_out_error(space: SearchSpace, data: Any) -> None:
    xtr, ytr, xte, yte = data
    chosen, reports = select_accuracy_predictor(space, xtr, ytr, candidates=("ridge", "gp"), seed=0)
    assert set(reports) == {"ridge", "gp"}
    best = min(reports, key=lambda k: reports[k]["mae"])
    assert chosen.kind == best and chosen.fitted
    assert quality_report(yte, np.asarray(chosen.predict(xte)))["kendall_tau"] > 0.75
    with pytest.raises(PredictorError, match="selection metric"):
        select_accuracy_predictor(space, xtr, ytr, metric="r2")


@pytest.mark.parametrize("kind", ["ridge", "gp"])
def test_accuracies_are_fitted_in_logit_space(
    kind: str, space: SearchSpace, data: Any, tmp_path: Path
) -> None:
    xtr, ytr, xte, _ = data
    acc = 0.5 + 0.49 * (ytr - ytr.min()) / (ytr.max() - ytr.min())  # in [0.5, 0.99]
    model = make_predictor(kind, space).fit(xtr, acc)
    assert model.logit  # "auto": every target in [0, 1]
    mean, std = model.predict(xte, return_std=True)
    assert np.all((mean > 0) & (mean < 1)) and np.all(std >= 0)
    loaded = load_predictor(model.save(tmp_path / "acc.npz"))
    assert loaded.logit and np.allclose(loaded.predict(xte), mean)
    assert not make_predictor(kind, space, target="identity").fit(xtr, acc).logit
    assert not make_predictor(kind, space).fit(xtr, acc * 3).logit  # not accuracies
    with pytest.raises(PredictorError, match=r"values in \[0, 1\]"):
        make_predictor(kind, space, target="logit").fit(xtr, acc * 3)
    with pytest.raises(PredictorError, match="target transform 'log'"):
        make_predictor(kind, space, target="log")
