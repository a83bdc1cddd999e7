"""The job pipeline end to end in one process (in-memory sink, local engine) on a tiny MLP:
stages in order, one row per candidate, a non-dominated measured front, exports that load and
reproduce the supernet, and a second run that resumes without repeating any work."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from nas_service.domain import STAGES, JobSpec
from search_spaces.nn import build_static, load_subnet
from tests.workers.conftest_ray import TINY_SPEC, make_spec
from workers.bn import recalibrate_bn
from workers.pipeline import (
    DataRef,
    DeviceInfo,
    JobCancelled,
    JobInputs,
    LocalEngine,
    MemorySink,
    run_pipeline,
    work,
)
from workers.search import pareto_mask
from workers.training import load_checkpoint

# The shared tiny job, searched for accuracy against measured latency.
SPEC = make_spec(
    search={**TINY_SPEC["search"], "objectives": [{"name": "accuracy"}, {"name": "latency_ms"}]},
    seed=3,
)


def make_inputs(tmp: Path, spec: dict[str, Any] = SPEC) -> JobInputs:
    js = JobSpec.model_validate(spec)
    return JobInputs(
        job_id="local",
        spec=js,
        data=DataRef("digits", js.seed),
        run_dir=tmp / "run",
        devices=(DeviceInfo("cpu"),),
        cache_dir=tmp / "cache",
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[JobInputs, MemorySink, Any]:
    inputs = make_inputs(tmp_path_factory.mktemp("pipeline"))
    sink = MemorySink()
    result = run_pipeline(inputs, sink, LocalEngine())
    return inputs, sink, result


def test_stages_run_in_order_and_training_is_logged(finished: Any) -> None:
    inputs, sink, result = finished
    order: list[str] = []
    for stage, _ in sink.stages:
        if not order or order[-1] != stage:
            order.append(stage)
    assert order == list(STAGES)
    # One metrics row per trained epoch (one epoch per phase: full, depth, width).
    assert [(m["phase"], m["epoch"]) for m in sink.metrics] == [
        ("full", 1),
        ("elastic-depth", 1),
        ("elastic-width", 1),
    ]
    assert all(0.0 <= m["metrics"]["accuracy"]["largest"]["accuracy"] <= 1.0 for m in sink.metrics)
    # Training progress reads across all phases: epoch k of the 3 in the whole schedule.
    training = [p for stage, p in sink.stages if stage == "training" and "global_epoch" in p]
    assert [(p["global_epoch"], p["total_epochs"]) for p in training][-3:] == [
        (1, 3),
        (2, 3),
        (3, 3),
    ]
    assert Path(result.checkpoint) == inputs.train_dir / "final.pt"
    assert sink.checkpoint_uri == result.checkpoint


def test_candidates_are_unique_and_the_measured_front_is_non_dominated(finished: Any) -> None:
    inputs, sink, result = finished
    rows = sink.stored_candidates("cpu")
    assert len(rows) == inputs.spec.search.budget == sink.inserts
    assert len({r.genotype for r in rows}) == len(rows)
    space = work.checkpoint_space(result.checkpoint)
    for r in rows:
        assert r.genotype == ",".join(map(str, space.encode(r.arch)))
        assert r.metrics["flops"] == space.flops(r.arch)
        assert 0.0 <= r.metrics["accuracy"] <= 1.0 and r.metrics["latency_ms"] > 0
    front = [r for r in rows if r.genotype in set(sink.pareto["cpu"])]
    assert front and all(r.source == "measured" for r in front)
    assert result.pareto["cpu"] == [r.genotype for r in front]
    # Predicted latency is kept next to the measured one.
    assert all("latency_ms" in r.predicted for r in front)
    measured = [r for r in rows if r.source == "measured"]
    values = np.array([[r.metrics["accuracy"], r.metrics["latency_ms"]] for r in measured])
    mask = pareto_mask(values, ["max", "min"])
    assert {r.genotype for r, m in zip(measured, mask, strict=True) if m} == set(sink.pareto["cpu"])
    # A front after every search batch (2 batches of 6), then the measured one.
    hv = sink.hypervolumes["cpu"]
    assert len(hv) >= 3 and all(h is not None and h > 0 for h in hv)
    assert result.hypervolume["cpu"] == pytest.approx(hv[-1])


def _reference(inputs: JobInputs, checkpoint: str, arch: dict[str, int]) -> tuple[Any, Any, Any]:
    """Raw validation samples, what the arch consumes of them, and the supernet's own output for
    ``arch`` after BN recalibration on the seeded subset."""
    from search_spaces.nn.preprocess import Preprocess, to_raw

    _, net = load_checkpoint(checkpoint)
    net.set_active(arch)
    x_bn = work.bn_subset(inputs.data, inputs.seed)
    recalibrate_bn(net, [net.prepare_input(x_bn[i : i + 200]) for i in range(0, len(x_bn), 200)])
    splits = work.load_data(inputs.data)
    x_val, _ = splits.tensors("val")
    spec = splits.info["preprocessing"]
    raw = to_raw(x_val[:16], spec)
    x = net.prepare_input(Preprocess(spec, x_val.shape[1:]).normalise(raw))
    with torch.no_grad():
        return raw, x, net(x)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_pareto_subnet_is_exported_in_three_formats_that_reproduce_the_supernet(
    finished: Any,
) -> None:
    inputs, sink, result = finished
    front = set(sink.pareto["cpu"])
    assert {g for g, _ in sink.artifacts} == front
    assert result.artifacts == 3 * len(front)
    by_genotype = {r.genotype: r for r in sink.stored_candidates("cpu")}
    for (genotype, kind), art in sink.artifacts.items():
        path = Path(art.uri)
        assert path.is_file() and path.stat().st_size == art.size_bytes
        assert hashlib.sha256(path.read_bytes()).hexdigest() == art.sha256
        arch = by_genotype[genotype].arch
        raw, x, ref = _reference(inputs, result.checkpoint, arch)
        with torch.no_grad():
            if kind == "subnet_weights":
                # The bare subnet (build_static) takes the normalised batch ...
                blob = torch.load(path, weights_only=True)
                net = build_static(blob["space"], blob["arch"])
                net.load_state_dict(blob["state_dict"])
                assert blob["arch"] == arch
                assert torch.allclose(net.eval()(x), ref, atol=1e-5)
                # ... and with its stored preprocessing, the raw samples.
                assert torch.allclose(load_subnet(str(path))(raw), ref, atol=1e-5)
            elif kind == "subnet_torchscript":
                out = torch.jit.load(str(path)).eval()(raw)
                assert torch.allclose(out, ref, atol=1e-5)
            else:
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                (out_np,) = session.run(None, {session.get_inputs()[0].name: raw.numpy()})
                assert np.abs(out_np - ref.numpy()).max() <= 1e-4


def test_a_second_run_resumes_without_repeating_work(finished: Any) -> None:
    inputs, sink, first = finished
    before = (sink.inserts, len(sink.metrics), dict(sink.artifacts))
    again = run_pipeline(inputs, sink, LocalEngine())
    assert (sink.inserts, len(sink.metrics)) == before[:2]  # nothing new trained or stored
    assert again.artifacts == 0 and sink.artifacts == before[2]
    assert again.pareto == first.pareto


def test_cancel_stops_training_within_seconds(tmp_path: Path) -> None:
    spec = {**SPEC, "training": {"preset": "default", "epochs_scale": 5.0, "batch_size": 32}}
    inputs = make_inputs(tmp_path, spec)
    sink = MemorySink()
    cancelled_at: list[float] = []

    def cancel_after_first_epoch() -> None:
        while not sink.metrics:
            time.sleep(0.05)
        cancelled_at.append(time.monotonic())
        sink.cancel.set()

    threading.Thread(target=cancel_after_first_epoch, daemon=True).start()
    with pytest.raises(JobCancelled):
        run_pipeline(inputs, sink, LocalEngine())
    stopped_after = time.monotonic() - cancelled_at[0]
    assert stopped_after < 5.0
    assert 1 <= len(sink.metrics) < 20  # stopped long before the 20+ epochs of the schedule
    assert not (inputs.train_dir / "final.pt").exists()
    assert list((inputs.train_dir / "checkpoints").glob("p*-e*.pt"))  # kept for a resume
    assert not sink.candidates


def reusing_inputs(
    tmp: Path, checkpoint: str, search: dict[str, Any], device: DeviceInfo
) -> JobInputs:
    """A job on ``device`` that searches the supernet trained by the ``finished`` job."""
    spec = {
        **SPEC,
        "devices": [device.name],
        "search": search,
        "supernet_from": "00000000-0000-0000-0000-000000000001",
    }
    js = JobSpec.model_validate(spec)
    return JobInputs(
        job_id=f"reuse-{device.name}",
        spec=js,
        data=DataRef("digits", js.seed),
        run_dir=tmp / "run",
        devices=(device,),
        cache_dir=tmp / "cache",
        supernet_checkpoint=Path(checkpoint),
    )


def test_a_job_reusing_a_trained_supernet_skips_training_and_respects_bounds(
    finished: Any, tmp_path: Path
) -> None:
    _, _, first = finished
    objectives = [{"name": "accuracy"}, {"name": "flops", "bound": 2500}]
    search = {"algorithm": "random", "budget": 10, "objectives": objectives}
    inputs = reusing_inputs(tmp_path, first.checkpoint, search, DeviceInfo("cpu"))
    sink = MemorySink()
    result = run_pipeline(inputs, sink, LocalEngine())
    assert result.checkpoint == first.checkpoint
    assert not sink.metrics and not (inputs.train_dir / "final.pt").exists()
    assert sink.stages[0] == ("training", {"skipped": True, "reused": first.checkpoint})
    rows = sink.stored_candidates("cpu")
    assert len(rows) == 10
    assert {r.feasible for r in rows} == {True, False}  # the bound splits this space
    for r in rows:
        assert r.feasible == (r.metrics["flops"] <= 2500)
    front = [r for r in rows if r.genotype in set(sink.pareto["cpu"])]
    assert front and all(r.feasible and r.source == "measured" for r in front)


def test_a_paired_device_times_table_and_front_on_one_stored_reference_scale(
    finished: Any, tmp_path: Path
) -> None:
    """A device registered like ``cpu-stable`` (frozen TorchScript, thread clock, every run
    paired with a reference network): the lookup table and the re-measured front are timed
    against one speed reference, stored once in the cache folder, and agree with each other."""
    _, _, first = finished
    device = DeviceInfo(
        "stable", clock="cpu", runtime="torchscript", paired=True, warmup=2, repeats=6
    )
    search = {**SPEC["search"], "algorithm": "random", "budget": 8}
    inputs = reusing_inputs(tmp_path, first.checkpoint, search, device)
    sink = MemorySink()
    run_pipeline(inputs, sink, LocalEngine())
    references = list(inputs.cache_dir.glob("reference-stable-*.json"))
    assert len(references) == 1 and json.loads(references[0].read_text())["nominal_ms"] > 0
    assert len(list(inputs.cache_dir.glob("latency-stable-*.json"))) == 1
    front = [r for r in sink.stored_candidates("stable") if r.source == "measured"]
    assert front
    for r in front:
        measured, predicted = r.metrics["latency_ms"], r.predicted["latency_ms"]
        # Same scale: the table's prediction is the measurement's order of magnitude.
        assert 0.5 < predicted / measured < 2, (predicted, measured)


def test_the_front_reports_held_out_test_accuracy_and_exports_carry_it(finished: Any) -> None:
    """Each measured subnet is scored on the test split too (never used to train or select);
    the value equals a direct evaluation on that split, and the exports carry both accuracies
    labelled by split."""
    inputs, sink, result = finished
    front = [r for r in sink.stored_candidates("cpu") if r.genotype in set(sink.pareto["cpu"])]
    direct = work.evaluate(
        result.checkpoint, inputs.data, [r.arch for r in front], inputs.seed, split="test"
    )
    val = work.evaluate(result.checkpoint, inputs.data, [r.arch for r in front], inputs.seed)
    for r, d, v in zip(front, direct, val, strict=True):
        assert r.metrics["test_accuracy"] == pytest.approx(d["accuracy"])
        assert r.metrics["accuracy"] == pytest.approx(v["accuracy"])
    assert work.load_data(inputs.data).sizes()["test"] > 0
    by_genotype = {r.genotype: r for r in front}
    for (genotype, kind), art in sink.artifacts.items():
        r = by_genotype[genotype]
        if kind == "subnet_weights":
            meta = torch.load(art.uri, weights_only=True)["metadata"]
        elif kind == "subnet_torchscript":
            files = {"metadata.json": ""}
            torch.jit.load(art.uri, _extra_files=files)
            meta = json.loads(files["metadata.json"])
        else:
            import onnx

            props = {p.key: p.value for p in onnx.load(art.uri).metadata_props}
            meta = json.loads(props["nas_metadata"])
        assert meta["accuracy"] == {
            "val": pytest.approx(r.metrics["accuracy"]),
            "test": pytest.approx(r.metrics["test_accuracy"]),
        }
        assert meta["latency_ms"]["device"] == "cpu"


def test_downloads_take_raw_inputs_and_give_the_reported_test_accuracy(finished: Any) -> None:
    """The exports carry the data's preprocessing: fed the user's raw samples (scikit-learn's
    digits images, 0..16 floats of shape (N, 8, 8)) of the held-out test split, each format
    scores the test accuracy the front reports."""
    import onnxruntime as ort
    from sklearn.datasets import load_digits

    inputs, sink, _ = finished
    splits = work.load_data(inputs.data)
    idx = splits.indices["test"]
    bunch = load_digits()
    raw, labels = bunch.images[idx], bunch.target[idx]
    assert raw.shape == (len(idx), 8, 8) and raw.max() == 16.0
    by_genotype = {r.genotype: r for r in sink.stored_candidates("cpu")}
    checked = set()
    for (genotype, kind), art in sink.artifacts.items():
        expected = by_genotype[genotype].metrics["test_accuracy"]
        if kind == "subnet_weights":
            with torch.no_grad():
                logits = load_subnet(art.uri)(torch.from_numpy(raw)).numpy()
            meta = torch.load(art.uri, weights_only=True)["metadata"]["preprocessing"]
            assert (meta["layout"], meta["scale"], meta["input_shape"]) == ("NHW", 16.0, [8, 8])
        elif kind == "subnet_torchscript":
            with torch.no_grad():
                logits = torch.jit.load(art.uri)(torch.from_numpy(raw)).numpy()
        else:
            session = ort.InferenceSession(art.uri, providers=["CPUExecutionProvider"])
            (logits,) = session.run(["logits"], {"input": raw})
        accuracy = float((logits.argmax(1) == labels).mean())
        # Float rounding may move one sample across a decision boundary, no more.
        assert abs(accuracy - expected) <= 1 / len(idx) + 1e-9, (kind, accuracy, expected)
        checked.add(kind)
    assert checked == {"subnet_weights", "subnet_torchscript", "subnet_onnx"}


def test_a_bound_no_subnet_meets_ends_with_an_outcome_that_says_why(
    finished: Any, tmp_path: Path
) -> None:
    """A latency bound below what the smallest network measures: the job stores and measures
    the smallest network, keeps an empty front, and its outcome names the smallest network's
    real latency against the bound and lists the closest candidates. Nothing is exported."""
    _, _, first = finished
    objectives = [{"name": "accuracy"}, {"name": "latency_ms", "bound": 1e-6}]
    search = {"algorithm": "random", "budget": 6, "objectives": objectives}
    inputs = reusing_inputs(tmp_path, first.checkpoint, search, DeviceInfo("cpu"))
    sink = MemorySink()
    result = run_pipeline(inputs, sink, LocalEngine())
    space = work.checkpoint_space(first.checkpoint)
    smallest = ",".join(map(str, space.encode(space.min_arch())))
    rows = {r.genotype: r for r in sink.stored_candidates("cpu")}
    assert smallest in rows and rows[smallest].source == "measured"
    assert sink.pareto["cpu"] == [] and result.artifacts == 0 and not sink.artifacts
    out = result.outcome
    assert out["code"] == "no_feasible_subnet"
    measured_ms = rows[smallest].metrics["latency_ms"]
    assert "the smallest network measures" in out["message"]
    assert f"{measured_ms:.4g} ms" in out["message"] and "latency_ms<=1e-06" in out["message"]
    closest = out["devices"]["cpu"]["closest"]
    assert 1 <= len(closest) <= 5
    violations = [c["violation"] for c in closest]
    assert violations == sorted(violations) and violations[0] > 0
    assert all(c["source"] == "measured" for c in closest)


def test_a_bound_only_the_smallest_networks_meet_still_gives_a_front(
    finished: Any, tmp_path: Path
) -> None:
    """A FLOPs bound at the smallest network's: few random samples of this space meet it (the
    seeded random search below meets it with none), but the job ends with a non-empty,
    feasible front and says so."""
    _, _, first = finished
    space = work.checkpoint_space(first.checkpoint)
    bound = space.flops(space.min_arch())
    rng = np.random.default_rng(0)
    share = np.mean([space.flops(space.sample(rng)) <= bound for _ in range(500)])
    assert share < 0.1
    objectives = [{"name": "accuracy"}, {"name": "flops", "bound": bound}]
    search = {"algorithm": "random", "budget": 6, "objectives": objectives}
    inputs = reusing_inputs(tmp_path, first.checkpoint, search, DeviceInfo("cpu"))
    sink = MemorySink()
    result = run_pipeline(inputs, sink, LocalEngine())
    front = [r for r in sink.stored_candidates("cpu") if r.genotype in set(sink.pareto["cpu"])]
    assert front and all(r.feasible and r.metrics["flops"] <= bound for r in front)
    assert sum(r.feasible for r in sink.stored_candidates("cpu")) >= 1
    assert result.outcome["code"] == "front"
    assert result.outcome["devices"]["cpu"]["front"] == len(front)


def depth_of(space: Any, arch: Any) -> float:
    """A throwaway analytic objective: the number of hidden layers."""
    return float(space.canonical(arch)["depth"])


def test_an_analytic_objective_registered_in_the_catalog_is_searched_and_stored(
    finished: Any, tmp_path: Path
) -> None:
    """One catalog entry is all an analytic objective needs: the search computes it for every
    candidate, the front is non-dominated on it, and its bound is enforced."""
    from nas_service.catalog import CATALOG, Entry, register

    register(
        Entry(
            "objective",
            "hidden_layers",
            "a throwaway analytic objective",
            impl="tests.workers.test_runner_pipeline:depth_of",
            info={
                "direction": "min",
                "bound": "positive",
                "unit": "",
                "label": "layers",
                "analytic": True,
            },
        )
    )
    try:
        _, _, first = finished
        objectives = [{"name": "accuracy"}, {"name": "hidden_layers", "bound": 2}]
        search = {"algorithm": "evolution", "budget": 8, "objectives": objectives}
        inputs = reusing_inputs(tmp_path, first.checkpoint, search, DeviceInfo("cpu"))
        sink = MemorySink()
        result = run_pipeline(inputs, sink, LocalEngine())
    finally:
        CATALOG.unregister("objective", "hidden_layers")
    rows = sink.stored_candidates("cpu")
    assert all(r.metrics["hidden_layers"] == r.arch["depth"] for r in rows)
    front = [r for r in rows if r.genotype in set(sink.pareto["cpu"])]
    assert front and all(r.metrics["hidden_layers"] <= 2 for r in front)
    assert result.outcome["code"] == "front"


class GpuRecordingEngine(LocalEngine):
    """Runs everything here, like ``LocalEngine``, and records the GPU share of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def call(self, fn: Any, *args: Any, resources: Any = None, gpus: float = 0.0) -> Any:
        self.calls.append((fn.__name__, gpus))
        return super().call(fn, *args, resources=resources, gpus=gpus)

    def map(self, fn: Any, calls: Any, *, resources: Any = None, gpus: float = 0.0) -> Any:
        self.calls.append((fn.__name__, gpus))
        return super().map(fn, calls, resources=resources, gpus=gpus)


@pytest.mark.parametrize(("gpus_per_worker", "share"), [(0.0, 0.0), (0.5, 0.5), (2.0, 1.0)])
def test_a_gpu_jobs_evaluation_and_export_ask_for_a_gpu_and_latency_does_not(
    finished: Any, tmp_path: Path, gpus_per_worker: float, share: float
) -> None:
    _, _, first = finished
    search = {"algorithm": "random", "budget": 6, "objectives": SPEC["search"]["objectives"]}
    inputs = reusing_inputs(tmp_path, first.checkpoint, search, DeviceInfo("cpu"))
    resources = inputs.spec.resources.model_copy(update={"gpus_per_worker": gpus_per_worker})
    inputs = replace(inputs, spec=inputs.spec.model_copy(update={"resources": resources}))
    assert inputs.gpus == share  # one device per call, at most one GPU
    engine = GpuRecordingEngine()
    result = run_pipeline(inputs, MemorySink(), engine)
    assert result.pareto["cpu"] and result.artifacts > 0
    by_unit: dict[str, set[float]] = {}
    for name, gpus in engine.calls:
        by_unit.setdefault(name, set()).add(gpus)
    # Scoring (search and the measured front) and every export follow the job onto GPUs;
    # latency is timed on its own target device, never on the training GPU.
    assert by_unit["evaluate"] == {share} and by_unit["write_export"] == {share}
    assert by_unit["measure"] == {0.0} and by_unit["build_table"] == {0.0}
