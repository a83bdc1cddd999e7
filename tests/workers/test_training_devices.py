"""Devices, precision and mid-epoch checkpoints of the trainer (CPU here; the CUDA paths are
chosen by the same code and tested up to the device choice, the GPU runs are marked ``gpu``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.workers.test_training import StopAt, _max_diff, _weights, data, space, tiny_config  # noqa: F401
from workers.training import TrainingCancelled, train_supernet
from workers.training.checkpoint import list_checkpoints
from workers.training.distributed import autocast, autocast_enabled, resolve_device

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_auto_picks_the_gpu_only_where_there_is_one() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
            resolve_device("cuda")


def test_bf16_autocasts_on_cuda_only() -> None:
    assert autocast_enabled(torch.device("cuda"), "bf16")
    assert not autocast_enabled(torch.device("cuda"), "fp32")
    assert not autocast_enabled(torch.device("cpu"), "bf16")  # the CPU trains in fp32
    with pytest.raises(ValueError, match="precision"):
        autocast_enabled(torch.device("cpu"), "fp8")
    with autocast(torch.device("cpu"), "bf16"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_a_run_resumed_from_a_mid_epoch_checkpoint_matches_an_uninterrupted_one(
    tmp_path: Path,
    space: Any,  # noqa: F811
    data: Any,  # noqa: F811
) -> None:
    cfg = tiny_config()
    every: dict[str, Any] = {"checkpoint_every_steps": 3}
    full = train_supernet(space, data, cfg, run_dir=tmp_path / "a", seed=1, **every)
    names = [p.name for p in list_checkpoints(tmp_path / "a")]
    # Mid-epoch checkpoints are superseded (removed) once their epoch's checkpoint exists.
    assert not any("-s" in n for n in names) and len(names) == 6
    # Checkpoints every 3 steps after the last: the epoch ends at step 12, then step 15 (3 steps
    # into the first elastic-width epoch); stopped before step 16, it resumes from there.
    with pytest.raises(TrainingCancelled):
        train_supernet(
            space, data, cfg, run_dir=tmp_path / "b", seed=1, callbacks=[StopAt(15)], **every
        )
    last = list_checkpoints(tmp_path / "b")[-1]
    assert last.name == "p02-e0000-s0003.pt"
    blob = torch.load(last, weights_only=True)
    assert blob["step"] == 3 and blob["global_step"] == 15 and blob["optimizer"]
    resumed = train_supernet(space, data, cfg, run_dir=tmp_path / "b", seed=1, **every)
    assert _max_diff(_weights(full.final_path), _weights(resumed.final_path)) <= 1e-6
    assert [h["losses"] for h in resumed.history] == [h["losses"] for h in full.history]


def test_time_based_checkpoints_are_taken_mid_epoch(
    tmp_path: Path,
    space: Any,  # noqa: F811
    data: Any,  # noqa: F811
) -> None:
    saved: list[dict[str, Any]] = []
    cfg = tiny_config()
    train_supernet(
        space,
        data,
        cfg,
        run_dir=tmp_path,
        seed=0,
        checkpoint_every_s=1e-6,
        on_checkpoint=lambda path, info: saved.append(info),
    )
    assert any(i["step"] > 0 for i in saved), "no mid-epoch checkpoint"
    assert next(i for i in saved if i["step"] == 0)["global_step"] == 0


@pytest.mark.gpu
@needs_gpu
def test_training_on_cuda_in_bf16_writes_a_cpu_loadable_supernet(
    tmp_path: Path,
    space: Any,  # noqa: F811
    data: Any,  # noqa: F811
) -> None:
    res = train_supernet(
        space, data, tiny_config(), run_dir=tmp_path, seed=0, device="auto", precision="bf16"
    )
    assert res.final_metrics["largest"]["accuracy"] > 0.5
    for t in _weights(res.final_path).values():
        assert t.device.type == "cpu" and torch.isfinite(t.float()).all()
