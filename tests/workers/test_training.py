"""Supernet training: schedule, callbacks, checkpoints, resume equivalence, health guard."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from search_spaces import SearchSpace, get_space
from workers.data import DatasetSplits, load_dataset
from workers.training import (
    PhaseConfig,
    TrainConfig,
    TrainingCancelled,
    TrainingDiverged,
    default_config,
    load_checkpoint,
    train_supernet,
)
from workers.training.checkpoint import list_checkpoints
from workers.training.config import restrict_for_phase


@pytest.fixture(scope="module")
def data() -> DatasetSplits:
    return load_dataset("synthetic", seed=0, n=240, shape=(10,), classes=3, noise=0.8)


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return get_space("mlp", in_features=10, num_classes=3, widths=(8, 16, 32), depths=(1, 2))


def tiny_config(**overrides: Any) -> TrainConfig:
    phases = [
        PhaseConfig(name="full", epochs=2, lr=0.1, random_subnets=0, sandwich=False),
        PhaseConfig(
            name="elastic-depth", epochs=1, lr=0.05, unlock={"depth": []}, random_subnets=1
        ),
        PhaseConfig(
            name="elastic-width",
            epochs=2,
            lr=0.05,
            unlock={"depth": [], "width": []},
            random_subnets=2,
        ),
    ]
    base: dict[str, Any] = {"phases": phases, "batch_size": 32, "bn_images": 64, "bn_batch": 32}
    base["sampler"] = {"edge_samples": 50, "bins": 4}
    base.update(overrides)
    return TrainConfig.model_validate(base)


class Recorder:
    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.epochs: list[dict[str, Any]] = []
        self.rollbacks: list[dict[str, Any]] = []

    def on_step(self, info: dict[str, Any], net: torch.nn.Module) -> None:
        self.steps.append(info)

    def on_epoch(self, info: dict[str, Any], net: torch.nn.Module) -> None:
        self.epochs.append(info)

    def on_rollback(self, info: dict[str, Any]) -> None:
        self.rollbacks.append(info)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    blob = torch.load(path, weights_only=True)
    return blob["state_dict"]  # type: ignore[no-any-return]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def test_schedule_callbacks_and_final_checkpoint(tmp_path: Path, space, data) -> None:  # type: ignore[no-untyped-def]
    rec = Recorder()
    cfg = tiny_config()
    res = train_supernet(space, data, cfg, run_dir=tmp_path, callbacks=[rec], seed=0)
    steps_per_epoch = 156 // 32  # the train split of 240 samples (15% val, 20% test)
    assert data.sizes()["train"] == 156 and steps_per_epoch == 4
    assert len(rec.epochs) == 5 and len(rec.steps) == 5 * steps_per_epoch
    assert [e["phase"] for e in rec.epochs] == ["full"] * 2 + ["elastic-depth"] + [
        "elastic-width"
    ] * 2
    first = rec.steps[0]
    assert set(first) >= {"phase", "epoch", "step", "global_step", "losses", "lr", "throughput"}
    assert set(first["losses"]) == {"largest"} and first["throughput"] > 0
    # The sandwich phases train the largest, the smallest and n sampled subnets.
    last = rec.steps[-1]
    assert set(last["losses"]) == {"largest", "smallest", "random"} and len(last["flops"]) == 4
    assert last["flops"][0] == space.flops(space.max_arch())
    assert last["flops"][1] == space.flops(space.min_arch())
    # Cosine schedule: the learning rate decays within a phase.
    width_lrs = [s["lr"] for s in rec.steps if s["phase"] == "elastic-width"]
    assert width_lrs[0] > width_lrs[-1] and max(width_lrs) <= 0.05 + 1e-12
    ep = rec.epochs[-1]
    assert set(ep["accuracy"]) == {"smallest", "middle", "largest"}
    assert ep["accuracy"]["smallest"]["flops"] < ep["accuracy"]["largest"]["flops"]
    hist = ep["flops_histogram"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    assert sum(hist["counts"]) == 2 * steps_per_epoch  # two sampled subnets per step
    assert ep["accuracy"]["largest"]["accuracy"] > 0.6  # chance is 1/3
    assert res.rollbacks == 0 and res.final_metrics == ep["accuracy"]
    assert res.final_sha256 == hashlib.sha256(res.final_path.read_bytes()).hexdigest()
    # One checkpoint per epoch plus the starting state, each loadable weights-only.
    assert len(list_checkpoints(tmp_path)) == 6
    blob = torch.load(res.final_path, weights_only=True)
    assert set(blob) >= {"space", "state_dict"}
    loaded_space, net = load_checkpoint(res.final_path)
    assert loaded_space.spec() == space.spec()
    arch = space.min_arch()
    sub = net.extract(arch)
    sub.eval()
    net.set_active(arch)
    net.eval()
    x = data.tensors("val")[0][:16]
    assert torch.allclose(sub(x), net(net.prepare_input(x)), atol=1e-5)


class StopAt:
    def __init__(self, global_step: int) -> None:
        self.target, self.seen = global_step, 0

    def on_step(self, info: dict[str, Any], net: torch.nn.Module) -> None:
        self.seen = info["global_step"]

    def should_stop(self) -> bool:
        return self.seen >= self.target


def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path: Path, space, data) -> None:  # type: ignore[no-untyped-def]
    # Adaptive probes every 3 phase steps: the resume point (phase step 4 of the last phase)
    # falls between probes, so the restored probe state must carry over exactly.
    sampler = {"edge_samples": 50, "bins": 4, "policy": "adaptive", "probe_every": 3}
    cfg = tiny_config(sampler=sampler)
    full = train_supernet(space, data, cfg, run_dir=tmp_path / "a", seed=3)
    last = torch.load(list_checkpoints(tmp_path / "a")[-1], weights_only=True)
    probe_state = json.loads(last["sampler"])
    assert probe_state["probes"] == 3 and any(v != 0.0 for v in probe_state["score"])
    # Stop mid-epoch in the last phase (step 18 of 20), then resume from the epoch checkpoint.
    with pytest.raises(TrainingCancelled, match="resume=True"):
        train_supernet(space, data, cfg, run_dir=tmp_path / "b", seed=3, callbacks=[StopAt(18)])
    assert not (tmp_path / "b" / "final.pt").exists()
    resumed = train_supernet(space, data, cfg, run_dir=tmp_path / "b", seed=3)
    assert _max_diff(_weights(full.final_path), _weights(resumed.final_path)) <= 1e-6
    assert [h["losses"] for h in resumed.history] == [h["losses"] for h in full.history]
    # Resuming from an earlier, explicit checkpoint replays the same run too.
    early = list_checkpoints(tmp_path / "a")[2]
    again = train_supernet(space, data, cfg, run_dir=tmp_path / "c", seed=3, resume=early)
    assert _max_diff(_weights(full.final_path), _weights(again.final_path)) <= 1e-6
    with pytest.raises(ValueError, match="not an epoch checkpoint"):
        train_supernet(space, data, cfg, run_dir=tmp_path / "e", seed=3, resume=full.final_path)
    # A different seed is a different run.
    other = train_supernet(space, data, cfg, run_dir=tmp_path / "d", seed=4)
    assert _max_diff(_weights(full.final_path), _weights(other.final_path)) > 1e-3


class PoisonAt:
    """Writes NaN into a weight after the given global steps (the fault the guard must catch)."""

    def __init__(self, steps: set[int] | None, every_after: int | None = None) -> None:
        self.steps, self.every_after = steps or set(), every_after
        self.done: set[int] = set()

    def on_step(self, info: dict[str, Any], net: torch.nn.Module) -> None:
        g = info["global_step"]
        hit = g in self.steps and g not in self.done
        if hit or (self.every_after is not None and g >= self.every_after):
            self.done.add(g)
            with torch.no_grad():
                next(net.parameters()).view(-1)[0] = math.nan


def test_health_guard_rolls_back_on_nan_with_lower_lr(tmp_path: Path, space, data) -> None:  # type: ignore[no-untyped-def]
    rec = Recorder()
    cfg = tiny_config()
    res = train_supernet(
        space, data, cfg, run_dir=tmp_path, seed=0, callbacks=[rec, PoisonAt({12})]
    )
    assert res.rollbacks == 1 and len(rec.rollbacks) == 1
    assert "non-finite" in rec.rollbacks[0]["reason"] and rec.rollbacks[0]["lr_scale"] == 0.5
    for t in _weights(res.final_path).values():
        assert torch.isfinite(t.float()).all()
    # After the rollback (to the end of epoch 2, step 8) the same steps rerun at half the lr.
    before = [s for s in rec.steps if s["global_step"] == 11]
    assert len(before) == 2 and math.isclose(before[1]["lr"], 0.5 * before[0]["lr"])
    assert res.history[-1]["rollbacks"] == 1 and len(res.history) == 5
    assert res.final_metrics["largest"]["accuracy"] > 0.6


def test_health_guard_gives_up_after_bounded_rollbacks(tmp_path: Path, space, data) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config(health={"max_rollbacks": 2})
    rec = Recorder()
    with pytest.raises(TrainingDiverged, match=r"gave up after 2 rollback\(s\)"):
        train_supernet(
            space,
            data,
            cfg,
            run_dir=tmp_path,
            seed=0,
            callbacks=[rec, PoisonAt(None, every_after=7)],
        )
    assert len(rec.rollbacks) == 2
    assert not (tmp_path / "final.pt").exists()


class CollapseAt:
    """Zeroes every weight (finite, but the largest subnet falls to chance) once."""

    def __init__(self, global_step: int) -> None:
        self.target, self.fired = global_step, False

    def on_step(self, info: dict[str, Any], net: torch.nn.Module) -> None:
        if info["global_step"] == self.target and not self.fired:
            self.fired = True
            with torch.no_grad():
                for p in net.parameters():
                    p.zero_()


def test_health_guard_catches_accuracy_collapse(tmp_path: Path, space, data) -> None:  # type: ignore[no-untyped-def]
    rec = Recorder()
    res = train_supernet(
        space, data, tiny_config(), run_dir=tmp_path, seed=0, callbacks=[rec, CollapseAt(15)]
    )
    assert res.rollbacks == 1 and "collapsed" in rec.rollbacks[0]["reason"]
    assert res.final_metrics["largest"]["accuracy"] > 0.6


def test_resume_refuses_a_different_config(tmp_path: Path, space, data) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config()
    with pytest.raises(TrainingCancelled):
        train_supernet(space, data, cfg, run_dir=tmp_path, seed=0, callbacks=[StopAt(6)])
    with pytest.raises(ValueError, match="different config or seed"):
        train_supernet(space, data, tiny_config(batch_size=16), run_dir=tmp_path, seed=0)


def test_default_config_and_phase_views(data) -> None:  # type: ignore[no-untyped-def]
    digits_like = get_space(
        "mbv3", num_classes=10, in_channels=1, small_input=True, resolutions=(8,)
    )
    cfg = default_config(digits_like, data)
    assert [p.name for p in cfg.phases] == [
        "full",
        "elastic-kernel",
        "elastic-depth",
        "elastic-expand",
    ]
    assert cfg.label_smoothing == 0.1 and cfg.grad_clip == 1.0 and cfg.nesterov
    assert cfg.weight_decay == 3e-5 and cfg.momentum == 0.9
    multi = get_space("mbv3", num_classes=10, in_channels=3, small_input=True)
    assert default_config(multi, data).phases[-1].name == "elastic-resolution"
    full = restrict_for_phase(multi, cfg.phases[0])
    assert full.min_arch() == full.max_arch() == multi.max_arch()
    kernel = restrict_for_phase(multi, cfg.phases[1])
    assert kernel.max_arch() == multi.max_arch()
    assert {v for k, v in kernel.min_arch().items() if k.endswith("kernel")} == {3}
    assert kernel.min_arch()["s1.depth"] == 4
    bad = PhaseConfig(name="x", epochs=1, lr=0.1, unlock={"width": []})
    with pytest.raises(ValueError, match="kind"):
        restrict_for_phase(multi, bad)
    with pytest.raises(ValueError, match="unique"):
        TrainConfig(phases=[cfg.phases[0], cfg.phases[0]])


def test_tiny_mobilenet_runs_every_phase_and_reorders_once(tmp_path: Path) -> None:
    data = load_dataset("synthetic", seed=0, n=120, shape=(1, 8, 8), classes=3, noise=0.5)
    space = get_space(
        "mbv3", width_mult=0.1, num_classes=3, in_channels=1, small_input=True,
        resolutions=(8, 12), kernels=(3, 5), expands=(1, 2), depths=(1, 2), dropout=0.0,
    )  # fmt: skip
    cfg = default_config(space, data).model_copy(
        update={"batch_size": 40, "bn_images": 40, "bn_batch": 40}
    )
    cfg = cfg.model_copy(
        update={"phases": [p.model_copy(update={"epochs": 1}) for p in cfg.phases]}
    )
    assert [p.name for p in cfg.phases] == [
        "full", "elastic-kernel", "elastic-depth", "elastic-expand", "elastic-resolution",
    ]  # fmt: skip
    res = train_supernet(space, data, cfg, run_dir=tmp_path, seed=0)
    assert [h["phase"] for h in res.history] == [p.name for p in cfg.phases]
    reordered = [torch.load(p, weights_only=True)["reordered"] for p in list_checkpoints(tmp_path)]
    assert reordered == [False, False, False, False, True, True]
    # The resolution phase samples both input sizes; its smallest subnet runs at 8x8.
    assert res.history[-1]["accuracy"]["smallest"]["flops"] == space.flops(space.min_arch())
    _, net = load_checkpoint(res.final_path)
    from workers.training import recalibrated_extract

    arch = space.min_arch()
    sub = recalibrated_extract(net, arch, data, images=40)
    x = net.prepare_input(data.tensors("val")[0][:8])
    net.eval()
    assert torch.allclose(sub(x), net(x), atol=1e-4)
