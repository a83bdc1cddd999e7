"""The last two stages: re-measure each device's Pareto front for real, then export it.

Latency predicted by a lookup table drifts from what the device really does, so every point of
the predicted front is measured on its device (a Ray task on a node with the device's resource)
and its accuracy re-scored; the row becomes ``measured`` (the predicted values are kept) and the
front is recomputed on measured values. Exports are written once per (subnet, format).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from workers.pipeline.engine import ExportItem
from workers.pipeline.front import front_of, is_feasible, job_objectives
from workers.pipeline.search_stage import LatencyFn, job_reference
from workers.pipeline.sink import ArtifactRecord, CandidateRecord

if TYPE_CHECKING:
    from workers.pipeline.stages import Context

EXPORT_KINDS: dict[str, str] = {
    "weights": "subnet_weights",
    "torchscript": "subnet_torchscript",
    "onnx": "subnet_onnx",
}
EXPORT_SUFFIX: dict[str, str] = {"weights": "pt", "torchscript": "ts.pt", "onnx": "onnx"}
EXPORT_WAVE = 6


def measure_stage(
    ctx: Context, latency: Mapping[str, LatencyFn]
) -> tuple[dict[str, list[CandidateRecord]], dict[str, float]]:
    objectives = job_objectives(ctx.inputs.spec)
    fronts: dict[str, list[CandidateRecord]] = {}
    hvs: dict[str, float] = {}
    for device in ctx.inputs.devices:
        ctx.check_cancel(every_s=0)
        lat = latency.get(device.name)
        ref = job_reference(ctx, lat)
        rows = ctx.sink.stored_candidates(device.name)
        predicted_front, _ = front_of(rows, objectives, ref, predicted=True)
        todo = [c for c in predicted_front if c.source != "measured"]
        ctx.sink.report_stage(
            "measuring", {"device": device.name, "front": len(predicted_front), "todo": len(todo)}
        )
        if todo:
            archs = [c.arch for c in todo]
            ms = ctx.engine.measure_latency(
                device, ctx.inputs.checkpoint(), archs, ctx.inputs.cache_dir
            )
            ctx.check_cancel(every_s=0)
            scores = ctx.engine.evaluate(
                ctx.inputs.checkpoint(), ctx.inputs.data, archs, ctx.inputs.seed
            )
            updated = []
            for c, t, s in zip(todo, ms, scores, strict=True):
                predicted: dict[str, float] = {
                    k: c.metrics[k] for k in ("accuracy", "latency_ms") if k in c.metrics
                }
                metrics = {
                    **c.metrics,
                    "accuracy": float(s["accuracy"]),
                    "loss": float(s["loss"]),
                    "latency_ms": float(t),
                }
                updated.append(
                    replace(
                        c,
                        metrics=metrics,
                        predicted=predicted,
                        source="measured",
                        feasible=is_feasible(metrics, objectives),
                    )
                )
            ctx.sink.add_candidates(updated)
        measured = [c for c in ctx.sink.stored_candidates(device.name) if c.source == "measured"]
        front, hv = front_of(measured, objectives, ref)
        ctx.sink.set_pareto(device.name, [c.genotype for c in front], hv)
        fronts[device.name] = front
        hvs[device.name] = hv
    return fronts, hvs


def export_name(genotype: str, fmt: str) -> str:
    digest = hashlib.sha256(genotype.encode()).hexdigest()[:16]
    return f"{digest}.{EXPORT_SUFFIX[fmt]}"


def export_stage(ctx: Context, fronts: Mapping[str, list[CandidateRecord]]) -> int:
    """Export every Pareto subnet in every format; returns how many artifacts were written.

    Exports go out in small waves (in parallel on Ray), so a cancel is seen between waves and
    progress is written as they land."""
    front: dict[str, CandidateRecord] = {}
    for rows in fronts.values():
        for c in rows:
            front.setdefault(c.genotype, c)
    total = len(front) * len(EXPORT_KINDS)
    todo = [
        (c, fmt, kind)
        for c in front.values()
        for fmt, kind in EXPORT_KINDS.items()
        if not ctx.sink.has_artifact(c.id, c.genotype, kind)
    ]
    done = total - len(todo)
    ctx.sink.report_stage("exporting", {"done": done, "of": total})
    for i in range(0, len(todo), EXPORT_WAVE):
        ctx.check_cancel(every_s=0)
        wave = todo[i : i + EXPORT_WAVE]
        items = [
            ExportItem(c.arch, fmt, ctx.inputs.export_dir / export_name(c.genotype, fmt))
            for c, fmt, _ in wave
        ]
        results = ctx.engine.export_many(
            ctx.inputs.checkpoint(), ctx.inputs.data, items, ctx.inputs.seed
        )
        for (c, _, kind), res in zip(wave, results, strict=True):
            ctx.sink.add_artifact(
                ArtifactRecord(
                    candidate_id=c.id,
                    genotype=c.genotype,
                    kind=kind,
                    uri=str(res.path),
                    sha256=res.sha256,
                    size_bytes=res.size_bytes,
                )
            )
        done += len(wave)
        ctx.sink.report_stage("exporting", {"done": done, "of": total})
    return len(todo)
