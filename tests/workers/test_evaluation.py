"""SubnetEvaluator on a briefly trained MLP supernet (digits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from search_spaces import get_space
from search_spaces.nn import Supernet
from workers.bn import recalibrate_bn
from workers.data import load_dataset
from workers.data.base import DatasetSplits
from workers.evaluation import SubnetEvaluator
from workers.training import default_config, load_checkpoint, train_supernet


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Supernet, DatasetSplits]:
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=0)
    space = get_space("mlp", in_features=64, num_classes=10, widths=(16, 32, 64), depths=(1, 2))
    cfg = default_config(space, data).scaled(0.25)
    run_dir: Path = tmp_path_factory.mktemp("mlp-run")
    train_supernet(space, data, cfg, run_dir=run_dir, seed=0)
    _, net = load_checkpoint(run_dir / "final.pt")
    return net, data


def _by_hand(
    net: Supernet, data: DatasetSplits, arch: dict[str, int], seed: int, n_bn: int
) -> dict[str, float]:
    """Extract the static subnet, recalibrate it on the same seeded subset, score val."""
    sub = net.extract(arch)
    x_train, _ = data.tensors("train")
    idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:n_bn]
    xb = net.prepare_input(x_train[idx])
    recalibrate_bn(sub, (xb[i : i + 100] for i in range(0, len(xb), 100)))
    x, y = data.tensors("val")
    with torch.no_grad():
        logits = sub(net.prepare_input(x))
    return {
        "accuracy": float((logits.argmax(1) == y).float().mean()),
        "loss": float(F.cross_entropy(logits, y)),
    }


def test_scores_match_an_extracted_recalibrated_subnet(
    trained: tuple[Supernet, DatasetSplits],
) -> None:
    net, data = trained
    space = net.space
    ev = SubnetEvaluator(net, data, seed=3, bn_images=400, bn_batch=100)
    archs = [space.max_arch(), space.min_arch(), space.sample(np.random.default_rng(1))]
    got = ev.evaluate(archs)
    for a, r in zip(archs, got, strict=True):
        ref = _by_hand(net, data, a, seed=3, n_bn=400)
        assert r["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-6)
        assert r["loss"] == pytest.approx(ref["loss"], rel=1e-4)
    assert got[0]["accuracy"] > 0.6  # trained: far above the 0.1 of chance


def test_cache_and_supernet_left_untouched(trained: tuple[Supernet, DatasetSplits]) -> None:
    net, data = trained
    space = net.space
    before = {k: v.clone() for k, v in net.state_dict().items()}
    active = dict(net.active)
    ev = SubnetEvaluator(net, data, seed=0, bn_images=300)
    a, b = space.min_arch(), space.max_arch()
    first = ev.evaluate([a, b, a])
    assert first[0] == first[2]
    assert ev.stats() == {"cached": 2, "scored": 2}  # the repeat was not scored again
    assert ev.evaluate([b]) == [first[1]]
    assert ev.scored == 2
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert net.active == active
    test = ev.evaluate([a], split="test")
    assert ev.scored == 3 and set(test[0]) == {"accuracy", "loss"}


def test_seeded_subset_and_bad_split(trained: tuple[Supernet, DatasetSplits]) -> None:
    net, data = trained
    arch = net.space.sample(np.random.default_rng(5))
    r1 = SubnetEvaluator(net, data, seed=4, bn_images=200).evaluate([arch])
    r2 = SubnetEvaluator(net, data, seed=4, bn_images=200).evaluate([arch])
    assert r1 == r2
    with pytest.raises(ValueError, match="split 'train' is not allowed"):
        SubnetEvaluator(net, data).evaluate([arch], split="train")
    with pytest.raises(ValueError, match="bn_images"):
        SubnetEvaluator(net, data, bn_images=0)
