"""The measuring stage: re-measure each device's Pareto front for real.

Latency predicted by a lookup table drifts from what the device really does, so every point of
the predicted front is measured on its device (a Ray task on a node with the device's resource)
and its accuracy re-scored on the validation split and scored on the held-out test split; the
row becomes ``measured`` (the predicted values are kept) and the front is recomputed on measured
values. When no measured candidate meets the bounds, the smallest network and the candidates
closest to feasible are measured too, and the outcome says why the front is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from workers.pipeline.front import front_of, is_feasible, job_objectives
from workers.pipeline.job import DeviceInfo
from workers.pipeline.outcome import device_outcome, job_outcome
from workers.pipeline.records import MeasuringProgress
from workers.pipeline.search import arch_short, genotype_key, job_reference, score
from workers.pipeline.sink import CandidateRecord
from workers.pipeline.work import latency as work_latency
from workers.pipeline.work.evaluation import evaluate_all
from workers.pipeline.work.latency import LatencyFn
from workers.search.objectives import all_constraints, violation

if TYPE_CHECKING:
    from workers.pipeline.stages import Context

# Unmeasured candidates closest to feasible that are measured when no measured one is.
RESCUE = 5


def _measure(
    ctx: Context, device: DeviceInfo, todo: Sequence[CandidateRecord]
) -> list[CandidateRecord]:
    """Time ``todo`` on the device, re-score them on the validation split and score them on the
    held-out test split; store them as measured (predicted values kept)."""
    objectives = job_objectives(ctx.inputs.spec)
    archs = [c.arch for c in todo]
    ck, data, seed = ctx.inputs.checkpoint(), ctx.inputs.data, ctx.inputs.seed
    # One call for the whole front: measurements on one device must not compete.
    ms = ctx.engine.call(
        work_latency.measure,
        device,
        ck,
        [dict(a) for a in archs],
        ctx.inputs.cache_dir,
        resources=work_latency.device_resources(device),
    )
    ctx.check_cancel(every_s=0)
    gpus = ctx.inputs.gpus
    scores = evaluate_all(ctx.engine, ck, data, archs, seed, gpus=gpus)
    held_out = evaluate_all(ctx.engine, ck, data, archs, seed, split="test", gpus=gpus)
    updated = []
    for c, t, s, h in zip(todo, ms, scores, held_out, strict=True):
        predicted: dict[str, float] = {
            k: c.metrics[k] for k in ("accuracy", "latency_ms") if k in c.metrics
        }
        metrics = {
            **c.metrics,
            "accuracy": float(s["accuracy"]),
            "loss": float(s["loss"]),
            "latency_ms": float(t),
        }
        if "accuracy" in h:
            metrics["test_accuracy"] = float(h["accuracy"])
        updated.append(
            replace(
                c,
                metrics=metrics,
                predicted=predicted,
                source="measured",
                feasible=is_feasible(metrics, objectives),
            )
        )
    return ctx.sink.add_candidates(updated)


def _rescue(
    ctx: Context,
    device: DeviceInfo,
    rows: Sequence[CandidateRecord],
    lat: LatencyFn | None,
) -> list[CandidateRecord]:
    """What to measure when nothing measured meets the bounds: the smallest network of the
    space (stored as a candidate if the search never proposed it) and the unmeasured
    candidates closest to feasible. A bound that some subnet meets is then met by the front;
    one that none meets is reported with the smallest network's real figure."""
    objectives = job_objectives(ctx.inputs.spec)
    constraints = all_constraints(objectives)
    space = ctx.space
    smallest = genotype_key(space.encode(space.min_arch()))
    have = {c.genotype: c for c in rows}
    todo: list[CandidateRecord] = []
    if smallest not in have:
        arch = space.min_arch()
        (ev,) = score(ctx, [arch], lat, {})
        rec = CandidateRecord(
            device=device.name,
            genotype=smallest,
            arch=dict(arch),
            arch_short=arch_short(space, arch),
            metrics=ev,
            feasible=is_feasible(ev, objectives),
        )
        todo += ctx.sink.add_candidates([rec])
    elif have[smallest].source != "measured":
        todo.append(have[smallest])
    pending = [c for c in rows if c.source != "measured" and c.genotype != smallest]
    pending.sort(key=lambda c: (violation(c.metrics, constraints), c.id or 0))
    return todo + pending[:RESCUE]


def measure_stage(
    ctx: Context, latency: Mapping[str, LatencyFn]
) -> tuple[dict[str, list[CandidateRecord]], dict[str, float], dict[str, Any]]:
    """Re-measure each device's predicted front; returns the measured fronts, their
    hypervolumes and the job's outcome (a front per device, or why a device has none)."""
    objectives = job_objectives(ctx.inputs.spec)
    fronts: dict[str, list[CandidateRecord]] = {}
    hvs: dict[str, float] = {}
    parts: dict[str, dict[str, Any]] = {}
    smallest = genotype_key(ctx.space.encode(ctx.space.min_arch()))
    for device in ctx.inputs.devices:
        ctx.check_cancel(every_s=0)
        lat = latency.get(device.name)
        ref = job_reference(ctx, lat)
        rows = ctx.sink.stored_candidates(device.name)
        predicted_front, _ = front_of(rows, objectives, ref, predicted=True)
        todo = [c for c in predicted_front if c.source != "measured"]
        ctx.sink.report_stage(MeasuringProgress(device.name, len(predicted_front), len(todo)))
        if todo:
            _measure(ctx, device, todo)
        measured = [c for c in ctx.sink.stored_candidates(device.name) if c.source == "measured"]
        front, hv = front_of(measured, objectives, ref)
        if not front:
            rescue = _rescue(ctx, device, ctx.sink.stored_candidates(device.name), lat)
            if rescue:
                ctx.sink.report_stage(MeasuringProgress(device.name, 0, len(rescue)))
                _measure(ctx, device, rescue)
            measured = [
                c for c in ctx.sink.stored_candidates(device.name) if c.source == "measured"
            ]
            front, hv = front_of(measured, objectives, ref)
        ctx.sink.set_pareto(device.name, [c.genotype for c in front], hv)
        fronts[device.name] = front
        hvs[device.name] = hv
        rows = ctx.sink.stored_candidates(device.name)
        parts[device.name] = device_outcome(device.name, rows, front, objectives, smallest)
    return fronts, hvs, job_outcome(parts)
