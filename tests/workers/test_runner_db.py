"""The runner on the real store and a real local Ray (training as a Ray Train run): a cancel
reaches the training and stops the job within seconds, leaving its checkpoints for a retry;
units are placed where their resources are (a device's node, a GPU for a GPU job's scoring)."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from PIL import Image

from nas_service.db import Database, results
from nas_service.db import artifacts as arts
from nas_service.db import datasets as dataset_repo
from nas_service.db import devices as device_repo
from nas_service.db import jobs as jobs_repo
from nas_service.domain import ArtifactKind, ArtifactStatus
from nas_service.settings import Settings
from search_spaces import get_space
from tests.workers.conftest_ray import (  # noqa: F401
    TEST_DEVICE_RESOURCE,
    TEST_NODE_GPUS,
    db,
    events,
    job_row,
    make_spec,
    owner,
    ray_local,
    settings,
    submit,
    wait_for,
)
from workers.data import load_dataset, space_options_for
from workers.pipeline import DataRef, DeviceInfo, EpochReport, TrainRequest, unit, work
from workers.pipeline.work.evaluation import evaluate
from workers.pipeline.work.export import write_export
from workers.pipeline.work.latency import DEVICE_RESOURCE_SHARE, build_table, device_resources
from workers.runtime.dispatcher import Dispatcher, DispatcherConfig
from workers.runtime.ray_engine import RayEngine, device_options
from workers.runtime.runner import resolve_inputs


def test_cancel_reaches_the_training_trial_within_seconds(
    ray_local: None,  # noqa: F811
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    long_training = {"preset": "default", "epochs_scale": 5.0, "batch_size": 32}
    jid = submit(db, owner(db), make_spec(training=long_training))
    d = Dispatcher(settings, config=DispatcherConfig(poll_s=0.1), worker_id="w-cancel")
    thread = threading.Thread(target=d.run)
    thread.start()
    try:

        def trained_an_epoch() -> bool:
            with db.transaction() as s:
                return bool(results.list_train_metrics(s, jid))

        wait_for(trained_an_epoch, 180, "the first training epoch")
        t0 = time.monotonic()
        with db.transaction() as s:
            assert jobs_repo.request_cancel(s, jid) is not None
        took = wait_for(lambda: job_row(db, jid).status == "cancelled", 60, "the cancel")
        wait_for(lambda: jid in d.outcomes, 30, "the dispatcher to collect the job's task")
    finally:
        d.stop()
        thread.join(timeout=60)
    print(f"cancel honoured {took:.1f}s after the request (t0={t0:.0f})")
    assert took < 10.0
    row = job_row(db, jid)
    assert row.stage == "training" and row.error is None
    kinds = [e.kind for e in events(db, jid)]
    assert kinds.index("cancel_requested") < len(kinds) - 1
    assert (events(db, jid)[-1].to_status, d.outcomes[jid]) == ("cancelled", "cancelled")
    # The run directory keeps its epoch checkpoints (a retry resumes from them).
    run_dir = Path(row.run_dir)
    assert list((run_dir / "train" / "checkpoints").glob("p*-e*.pt"))
    assert not (run_dir / "train" / "final.pt").exists()
    with db.transaction() as s:
        assert results.candidates_for_replay(s, jid) == []


@ray.remote(num_cpus=0)
def _assigned() -> dict[str, float]:
    return dict(ray.get_runtime_context().get_assigned_resources())


def test_latency_for_a_device_runs_only_where_its_resource_is(
    ray_local: None,  # noqa: F811
    tmp_path: Path,
) -> None:
    if not ray.cluster_resources().get(TEST_DEVICE_RESOURCE):
        pytest.skip("the local Ray of this session was started without the test resource")
    wired = DeviceInfo("wired", ray_resource=TEST_DEVICE_RESOURCE)
    assigned = ray.get(_assigned.options(**device_options(wired)).remote())
    assert assigned[TEST_DEVICE_RESOURCE] == pytest.approx(DEVICE_RESOURCE_SHARE)
    assert device_options(DeviceInfo("cpu")) == {}

    space = get_space("mlp", in_features=64, num_classes=10, widths=[8, 16], depths=[1, 2])
    engine = RayEngine()
    path = engine.call(
        build_table, wired, space.spec(), tmp_path, resources=device_resources(wired)
    )
    doc = json.loads(path.read_text())
    assert doc["profile"]["name"] == "wired" and doc["rows"]
    assert all(r["mean_ms"] > 0 for r in doc["rows"].values())

    # No node carries this device: its latency work is never scheduled anywhere else.
    absent = DeviceInfo("absent", ray_resource="nas_no_such_device")
    ref = engine.submit(
        build_table, absent, space.spec(), tmp_path, resources=device_resources(absent)
    )
    ready, _ = ray.wait([ref], timeout=3)
    ray.cancel(ref, force=True)
    assert not ready


@unit(cpus=0.5, gpu=True)
def _gpu_probe() -> tuple[list[Any], str | None, str, int]:
    """What a GPU unit's task sees: the GPU ids Ray gave it, its visible devices, the device
    ``auto`` picks there, and its process."""
    from workers.devices import resolve_device

    return (
        [str(i) for i in ray.get_gpu_ids()],
        os.environ.get("CUDA_VISIBLE_DEVICES"),
        str(resolve_device("auto")),
        os.getpid(),
    )


def test_a_gpu_jobs_units_are_given_a_gpu_on_ray_and_other_calls_none(
    ray_local: None,  # noqa: F811
) -> None:
    if ray.cluster_resources().get("GPU", 0) < TEST_NODE_GPUS:
        pytest.skip("the local Ray of this session was started without the declared GPU")
    engine = RayEngine()
    # Scoring and export may compute on a GPU; latency work never asks for the training GPU.
    assert RayEngine.task_options(evaluate, gpus=1.0)["num_gpus"] == 1.0
    assert RayEngine.task_options(write_export, gpus=0.5)["num_gpus"] == 0.5
    assert "num_gpus" not in RayEngine.task_options(evaluate)
    with pytest.raises(ValueError, match="does not compute on a GPU"):
        RayEngine.task_options(build_table, gpus=1.0)

    # As many chunks as calls fit on the free GPUs at once (larger chunks than CPU calls: a
    # GPU call loads its supernet in a fresh process).
    wait_for(lambda: ray.available_resources().get("GPU", 0) >= 1, 30, "the GPU to be free")
    assert [len(c) for c in engine.chunks(list(range(80)), gpus=0.5)] == [40, 40]
    assert [len(c) for c in engine.chunks(list(range(80)), gpus=1.0)] == [64, 16]

    # Given a GPU, the task holds it and sees only it (so ``auto`` picks it where CUDA is
    # real: this node only declares its GPU, so the device here stays the CPU).
    ids, visible, device, gpu_pid = engine.call(_gpu_probe, gpus=1.0)
    assert ids == ["0"] and visible == "0"
    assert device == ("cuda" if ray_has_real_cuda() else "cpu")
    # Without one, Ray hides every GPU from the task: it computes on the CPU; such calls
    # share a reused process, while every GPU call had a fresh one (no CUDA context left).
    cpu_calls = [engine.call(_gpu_probe) for _ in range(3)]
    assert all(c[0] == [] and not c[1] and c[2] == "cpu" for c in cpu_calls)
    assert gpu_pid not in {c[3] for c in cpu_calls}
    assert len({c[3] for c in cpu_calls}) < 3
    # Half a GPU each: two calls share the one GPU at once; chunks split for that.
    both = engine.map(_gpu_probe, [(), ()], gpus=0.5)
    assert [b[0] for b in both] == [["0"], ["0"]]
    assert gpu_pid not in {b[3] for b in both} and len({b[3] for b in both}) == 2


def ray_has_real_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_inputs_of_a_job_with_an_uploaded_dataset_devices_and_a_reused_supernet(
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    key = owner(db)
    rng = np.random.default_rng(0)
    npz = tmp_path / "upload.npz"
    np.savez(npz, x=rng.normal(size=(40, 6)).astype(np.float32), y=np.arange(40) % 2)
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for cls in ("cat", "dog"):
            for i in range(3):
                buf = io.BytesIO()
                Image.new("L", (8, 8), color=40 * i).save(buf, format="PNG")
                zf.writestr(f"{cls}/{i}.png", buf.getvalue())
    final = tmp_path / "earlier" / "final.pt"
    final.parent.mkdir()
    final.write_bytes(b"checkpoint")
    with db.transaction() as s:
        ids = {}
        for name, fmt, path in (("tab", "npz", npz), ("pets", "image-folder", archive)):
            art = arts.create_artifact(
                s, key, ArtifactKind.dataset, status=ArtifactStatus.ready, uri=str(path)
            )
            ids[fmt] = dataset_repo.create_dataset(s, key, name, fmt, art.id, {}).id
        device_repo.upsert_device(s, "phone", threads=2, batch_size=4, ray_resource="phone_link")
    earlier = submit(db, key)
    with db.transaction() as s:
        jobs_repo.set_run_info(s, earlier, checkpoint_uri=str(final))

    spec = make_spec(dataset={"id": str(ids["npz"])}, devices=["phone"], supernet_from=str(earlier))
    jid = submit(db, key, spec)
    inputs, owner_id = resolve_inputs(db, settings, jid)
    assert owner_id == key
    assert inputs.data == DataRef("npz", 0, {"path": str(npz)})
    assert sum(load_dataset(inputs.data.name, **inputs.data.options).sizes().values()) == 40
    assert inputs.devices == (
        DeviceInfo("phone", torch_device="cpu", threads=2, batch_size=4, ray_resource="phone_link"),
    )
    assert inputs.checkpoint() == final
    assert inputs.run_dir == (settings.data_dir / "runs" / str(jid)).resolve()

    jid = submit(db, key, make_spec(dataset={"id": str(ids["image-folder"])}))
    inputs, _ = resolve_inputs(db, settings, jid)
    # The runner passes the stored upload itself (nothing is unpacked); its reader takes it.
    assert inputs.data == DataRef("image-folder", 0, {"root": str(archive)})
    splits = load_dataset(inputs.data.name, **inputs.data.options)
    assert sum(splits.sizes().values()) == 6 and splits.info["classes"] == ["cat", "dog"]
    assert inputs.checkpoint() == inputs.train_dir / "final.pt"


def test_a_training_trial_that_dies_is_retried_and_resumes_from_its_checkpoint(
    ray_local: None,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = DataRef("digits", 0)
    space = build_space_for_test(data)
    training = {"preset": "tiny", "epochs_scale": 1.0, "batch_size": 256}
    req = TrainRequest(space.spec(), data, training, tmp_path / "train", seed=0)
    seen: list[EpochReport] = []

    def on_epoch(report: EpochReport) -> None:
        seen.append(report)
        if len(seen) == 2:  # the trial's process dies in the middle of the run
            os.kill(int(report.worker_pid or 0), signal.SIGKILL)

    final = RayEngine(max_failures=2).train(req, on_epoch, lambda: False)
    assert final == req.run_dir / "final.pt" and final.is_file()
    pids = list(dict.fromkeys(int(i.worker_pid or 0) for i in seen))
    assert len(pids) == 2, "one retry, in a new process"
    resumed = [i for i in seen if i.resumed_from is not None]
    assert len(resumed) == 1 and resumed[0].worker_pid == pids[1]
    assert resumed[0].resumed_from != "p00-e0000.pt", "the retry started from scratch"
    # Every epoch of the schedule was trained; the retry repeated none but the one it re-reports.
    epochs = list(dict.fromkeys((i.phase, i.epoch) for i in seen))
    cfg = work.train_config(space, work.load_data(data), training)
    assert epochs == [(p.name, e) for p in cfg.phases for e in range(1, p.epochs + 1)]
    assert len(seen) <= len(epochs) + 2


def build_space_for_test(data: DataRef) -> Any:
    opts = {**space_options_for("mlp", work.load_data(data)), "widths": [16, 32]}
    return get_space("mlp", **opts)


def test_a_job_that_cannot_run_fails_with_the_reason(
    ray_local: None,  # noqa: F811
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    # A convolutional space on tabular data: only the runner finds out (the store accepts it).
    spec = make_spec(
        space={"id": "mbv3", "options": {}},
        dataset={"name": "synthetic", "options": {"shape": [12], "n": 80}},
    )
    jid = submit(db, owner(db), spec)
    d = Dispatcher(settings, config=DispatcherConfig(poll_s=0.05), worker_id="w-fail")
    d.run(until=lambda: jid in d.outcomes)
    row = job_row(db, jid)
    assert (d.outcomes[jid], row.status) == ("failed", "failed")
    assert row.error.startswith("DatasetError: space 'mbv3' needs image data")
    last = events(db, jid)[-1]
    assert last.to_status == "failed" and "Traceback" in last.message
