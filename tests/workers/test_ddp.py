"""Data-parallel supernet training on Ray Train (``TorchTrainer``, gloo on the CPU).

- two workers equal one worker on the same global batch and seed: the same subnets every step
  (shared sampler seed), batch norm on global-batch statistics (``sync_bn``), gradients
  averaged once per sandwich step; the final weights agree within ``DDP_TOLERANCE`` (float32
  summation order of the all-reduce and of the two-pass vs. sum-of-squares batch variance);
- a SIGKILLed training worker brings the group back from the last reported checkpoint (taken
  every step, so mid-epoch) and the run ends with exactly the weights of an uninterrupted one;
- the job's progress reports step-level figures (images/s, ETA) between epochs;
- without ``resources.sync_bn`` (the default) each worker normalises its own share (plain
  DDP): the run trains through every phase and ends with weights that differ from one
  worker's.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from search_spaces import get_space
from tests.workers.conftest_ray import ray_local  # noqa: F401
from workers.data import space_options_for
from workers.pipeline import DataRef, EpochReport, TrainRequest, work
from workers.pipeline.records import TrainingProgress, TrainResources
from workers.runtime.ray_engine import STORAGE_DIR, RayEngine

# Max absolute difference of any weight or BN buffer after the whole tiny schedule (~30
# steps): float32 rounding only; a wrong reduction (sum instead of mean, local BN statistics,
# different subnets on the ranks) moves weights by 1e-2 and more.
DDP_TOLERANCE = 1e-4

DATA = DataRef("synthetic", 0, {"n": 300, "shape": [12], "classes": 3, "noise": 0.8})
TRAINING: dict[str, Any] = {"preset": "tiny", "epochs_scale": 0.5, "batch_size": 32}


def _request(run_dir: Path, workers: int, sync_bn: bool = True, **kw: Any) -> TrainRequest:
    """The test job; ``sync_bn`` (not the service's default) makes 2 workers equal 1."""
    opts = {**space_options_for("mlp", work.load_data(DATA)), "widths": [8, 16], "depths": [1, 2]}
    space = get_space("mlp", **opts)
    return TrainRequest(
        space.spec(),
        DATA,
        TRAINING,
        run_dir,
        seed=5,
        resources=TrainResources(workers=workers, sync_bn=sync_bn),
        **kw,
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    weights: dict[str, torch.Tensor] = torch.load(path, weights_only=True)["state_dict"]
    return weights


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


class _Seen:
    def __init__(self) -> None:
        self.epochs: list[EpochReport] = []
        self.progress: list[TrainingProgress] = []

    def on_epoch(self, r: EpochReport) -> None:
        self.epochs.append(r)

    def on_progress(self, p: TrainingProgress) -> None:
        self.progress.append(p)


@pytest.fixture(scope="module")
def baseline(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Any]:  # noqa: F811
    """Runs by workers (1, 2) and, as ``"local"``, 2 workers with ``sync_bn: false``."""
    root = tmp_path_factory.mktemp("ddp")
    out: dict[Any, Any] = {}
    for key, workers, sync_bn in ((1, 1, True), (2, 2, True), ("local", 2, False)):
        seen = _Seen()
        req = _request(root / f"w{key}", workers, sync_bn=sync_bn)
        assert TrainResources.from_json({"workers": workers}).sync_bn is False  # the default
        final = RayEngine(max_failures=0).train(req, seen.on_epoch, lambda: False, seen.on_progress)
        out[key] = (final, seen)
    return out


@pytest.mark.slow
def test_two_workers_train_the_weights_of_one_on_the_same_global_batch(
    baseline: dict[Any, Any],
) -> None:
    (one, seen1), (two, seen2) = baseline[1], baseline[2]
    diff = _max_diff(_weights(one), _weights(two))
    print(f"\n2-worker vs 1-worker max weight difference: {diff:.2e} (tolerance {DDP_TOLERANCE})")
    assert diff <= DDP_TOLERANCE
    assert [(r.phase, r.epoch) for r in seen1.epochs] == [(r.phase, r.epoch) for r in seen2.epochs]
    # The epoch losses are global averages: the same on one and on two workers.
    for a, b in zip(seen1.epochs, seen2.epochs, strict=True):
        for k, v in a.metrics["losses"].items():
            assert abs(v - b.metrics["losses"][k]) <= 1e-4
        assert b.metrics["world_size"] == 2
    # Both ranks took part: each wrote its pid.
    ranks = sorted(p.name for p in (one.parent / STORAGE_DIR / "ranks").glob("*.pid"))
    assert ranks == ["rank-0.pid"]
    ranks = sorted(p.name for p in (two.parent / STORAGE_DIR / "ranks").glob("*.pid"))
    assert ranks == ["rank-0.pid", "rank-1.pid"]


@pytest.mark.slow
def test_a_killed_training_worker_resumes_from_its_checkpoint_with_the_same_weights(
    baseline: dict[Any, Any],
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "killed"
    req = _request(run_dir, 2, checkpoint_every_steps=1)
    seen: list[EpochReport] = []
    killed: list[int] = []

    def on_epoch(report: EpochReport) -> None:
        seen.append(report)
        if len(seen) == 2 and not killed:
            # Rank 1 is at or past this checkpoint (one every step): kill it.
            pid = int((run_dir / STORAGE_DIR / "ranks" / "rank-1.pid").read_text())
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    final = RayEngine(max_failures=2).train(req, on_epoch, lambda: False)
    assert killed, "the worker was never killed"
    pids = list(dict.fromkeys(int(r.worker_pid or 0) for r in seen))
    assert len(pids) == 2, "the group came back in new processes"
    resumed = [r for r in seen if r.resumed_from is not None]
    assert len(resumed) == 1 and resumed[0].resumed_from != "p00-e0000.pt"
    diff = _max_diff(_weights(baseline[2][0]), _weights(final))
    print(f"\nresumed from {resumed[0].resumed_from}: max weight difference {diff:.2e}")
    assert diff <= 1e-6


@pytest.mark.slow
def test_step_level_progress_reaches_the_job(baseline: dict[Any, Any]) -> None:
    _, seen = baseline[2]
    assert seen.progress, "no step-level progress between epochs"
    p = seen.progress[-1]
    assert p.images_per_s and p.images_per_s > 0 and p.eta_s is not None and p.eta_s >= 0
    assert p.total_steps and p.position and 0 < p.position <= p.total_steps
    assert p.workers == 2 and p.steps


@pytest.mark.slow
def test_by_default_each_worker_normalises_its_own_share(baseline: dict[Any, Any]) -> None:
    (one, _), (local, seen) = baseline[1], baseline["local"]
    weights = _weights(local)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    # Batch statistics of 16 samples instead of 32: a different run, beyond float rounding.
    diff = _max_diff(_weights(one), weights)
    print(f"\nlocal-BN 2-worker vs 1-worker max weight difference: {diff:.2e}")
    assert diff > 100 * DDP_TOLERANCE
    assert [r.metrics["world_size"] for r in seen.epochs] == [2] * len(seen.epochs)
    assert seen.epochs[-1].metrics["losses"]  # it trained through every phase
