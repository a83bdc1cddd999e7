"""SubnetEvaluator on a briefly trained MLP supernet (digits), and the one BN-calibration rule
it shares with the trainer's per-epoch evaluation and the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from search_spaces import get_space
from search_spaces.nn import Supernet
from workers import bn
from workers.bn import calibration_indices, recalibrate_bn
from workers.data import load_dataset
from workers.data.base import DatasetSplits
from workers.evaluation import SubnetEvaluator
from workers.pipeline import work
from workers.pipeline.job import DataRef
from workers.training import (
    TrainConfig,
    TrainResult,
    bn_calibration_images,
    default_config,
    load_checkpoint,
    train_supernet,
)
from workers.training.config import restrict_for_phase
from workers.training.loop import derive_seed
from workers.training.samplers import make_sampler

RUN_SEED = 2


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[TrainResult, TrainConfig, Supernet, DatasetSplits]:
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=0)
    space = get_space("mlp", in_features=64, num_classes=10, widths=(16, 32, 64), depths=(1, 2))
    cfg = default_config(space, data).scaled(0.25)
    run_dir: Path = tmp_path_factory.mktemp("mlp-run")
    res = train_supernet(space, data, cfg, run_dir=run_dir, seed=RUN_SEED)
    _, net = load_checkpoint(run_dir / "final.pt")
    return res, cfg, net, data


@pytest.fixture(scope="module")
def trained(
    run: tuple[TrainResult, TrainConfig, Supernet, DatasetSplits],
) -> tuple[Supernet, DatasetSplits]:
    return run[2], run[3]


def _by_hand(
    net: Supernet, data: DatasetSplits, arch: dict[str, int], seed: int, n_bn: int
) -> dict[str, float]:
    """Extract the static subnet, recalibrate it on the same seeded subset, score val."""
    sub = net.extract(arch)
    x_train, _ = data.tensors("train")
    idx = calibration_indices(len(x_train), n_bn, seed)
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


def test_one_calibration_subset_for_training_search_and_export(
    trained: tuple[Supernet, DatasetSplits],
) -> None:
    net, data = trained
    x_train, _ = data.tensors("train")
    n = len(x_train)
    assert n < bn.BN_IMAGES  # digits: the whole (shuffled) train split
    idx = calibration_indices(n, seed=5)
    assert len(idx) == n and len(set(idx.tolist())) == n
    # Smaller counts are prefixes of the same permutation; other seeds give other orders.
    assert torch.equal(calibration_indices(n, 300, seed=5), idx[:300])
    assert not torch.equal(calibration_indices(n, 300, seed=6), idx[:300])
    ref = x_train[idx[:400]]
    assert torch.equal(bn_calibration_images(data, 400, 5), ref)  # recalibrated_extract's
    assert torch.equal(SubnetEvaluator(net, data, seed=5, bn_images=400)._raw["bn"], ref)
    # The pipeline (search scores and export) uses the default count with the job seed.
    assert (work.BN_IMAGES, work.BN_BATCH) == (bn.BN_IMAGES, bn.BN_BATCH)
    ref_data = DataRef("digits", 0)
    assert torch.equal(work.bn_subset(ref_data, 5), x_train[calibration_indices(n, seed=5)])
    cfg = default_config(net.space, data)
    assert (cfg.bn_images, cfg.bn_batch) == (bn.BN_IMAGES, bn.BN_BATCH)
    with pytest.raises(ValueError, match="at least one image"):
        calibration_indices(n, 0)


def test_training_time_and_search_time_scores_agree(
    run: tuple[TrainResult, TrainConfig, Supernet, DatasetSplits],
) -> None:
    """The trainer's last per-epoch scores equal SubnetEvaluator's on the saved supernet with
    the run seed: same calibration images and batches, same validation images (the digits
    validation split, 269 images, is under the trainer's ``eval_max_images`` cap of 1000;
    above the cap the trainer scores only the first ``eval_max_images`` validation images)."""
    res, cfg, net, data = run
    assert cfg.eval_max_images is not None and data.sizes()["val"] <= cfg.eval_max_images
    space = net.space
    last = len(cfg.phases) - 1
    view = restrict_for_phase(space, cfg.phases[last])
    # The trainer's middle arch is its last-phase sampler's (rebuilt from the run seed).
    middle = make_sampler(view, cfg.sampler, derive_seed(RUN_SEED, 11, last)).middle
    archs = {"smallest": view.min_arch(), "middle": middle, "largest": view.max_arch()}
    assert res.final_metrics["middle"]["flops"] == space.flops(middle)
    ev = SubnetEvaluator(net, data, seed=RUN_SEED)
    scores = ev.evaluate(list(archs.values()))
    for name, got in zip(archs, scores, strict=True):
        trained_score = res.final_metrics[name]
        assert got["accuracy"] == trained_score["accuracy"], name
        assert got["loss"] == pytest.approx(trained_score["loss"], rel=1e-5), name
    # Another seed calibrates on other images: the rule, not luck, makes them agree.
    other = SubnetEvaluator(net, data, seed=RUN_SEED + 1).evaluate([archs["middle"]])[0]
    assert other["loss"] != pytest.approx(res.final_metrics["middle"]["loss"], rel=1e-7)


def test_the_device_argument_gives_the_cpu_scores_bit_for_bit(
    trained: tuple[Supernet, DatasetSplits],
) -> None:
    net, data = trained
    space = net.space
    archs = [space.max_arch(), space.min_arch(), space.sample(np.random.default_rng(7))]
    default = SubnetEvaluator(net, data, seed=3, bn_images=300).evaluate(archs)
    devices: list[str | torch.device] = ["cpu", torch.device("cpu")]
    if not torch.cuda.is_available():
        devices.append("auto")  # the CPU here
    for device in devices:
        ev = SubnetEvaluator(net, data, seed=3, bn_images=300, device=device)
        assert ev.device == torch.device("cpu")
        assert ev.evaluate(archs) == default  # exact: same floats, same counts
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
            SubnetEvaluator(net, data, device="cuda")


def test_the_pipeline_unit_takes_the_device_and_scores_alike(
    run: tuple[TrainResult, TrainConfig, Supernet, DatasetSplits],
) -> None:
    res, _, net, _ = run
    ref = DataRef("digits", 0)
    archs = [net.space.max_arch(), net.space.min_arch()]
    on_cpu = work.evaluate(res.final_path, ref, archs, RUN_SEED, device="cpu")
    by_default = work.evaluate(res.final_path, ref, archs, RUN_SEED)
    assert on_cpu and all(set(r) == {"accuracy", "loss"} for r in on_cpu)
    if not torch.cuda.is_available():
        assert by_default == on_cpu  # auto is the CPU here


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_scores_on_cuda_match_the_cpu_and_the_supernet_stays_put(
    trained: tuple[Supernet, DatasetSplits],
) -> None:
    net, data = trained
    space = net.space
    archs = [space.max_arch(), space.min_arch(), space.sample(np.random.default_rng(8))]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cpu = SubnetEvaluator(net, data, seed=3, bn_images=400, device="cpu").evaluate(archs)
    gpu_ev = SubnetEvaluator(net, data, seed=3, bn_images=400, device="cuda")
    assert gpu_ev.device.type == "cuda"
    gpu = gpu_ev.evaluate(archs)
    n_val = data.sizes()["val"]
    for c, g in zip(cpu, gpu, strict=True):
        # fp32 on both; a near-tie may flip an argmax or two.
        assert abs(c["accuracy"] - g["accuracy"]) <= 2 / n_val + 1e-12
        assert g["loss"] == pytest.approx(c["loss"], rel=1e-3)
    # Moved back to where it was (the CPU), weights and BN statistics untouched.
    for k, v in net.state_dict().items():
        assert v.device.type == "cpu" and torch.equal(v, before[k]), k
