"""The exporting stage: every Pareto subnet in every export format, once per (subnet, format),
each file carrying its labelled figures (``export_metadata``)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nas_service.catalog import exports
from workers.pipeline.records import ExportingProgress
from workers.pipeline.sink import ArtifactRecord, CandidateRecord
from workers.pipeline.work.export import write_export

if TYPE_CHECKING:
    from workers.pipeline.stages import Context

EXPORT_WAVE = 6


def export_metadata(c: CandidateRecord, device: str) -> dict[str, Any]:
    """What an exported subnet says about itself: each accuracy labelled with its split."""
    m = c.metrics
    meta: dict[str, Any] = {
        "arch_short": c.arch_short,
        "genotype": c.genotype,
        "accuracy": {"val": m.get("accuracy"), "test": m.get("test_accuracy")},
        "accuracy_note": "val selected the front; test is held out (never trained or selected on)",
        "flops": m.get("flops"),
        "params": m.get("params"),
    }
    if "latency_ms" in m:
        meta["latency_ms"] = {"device": device, "measured": m["latency_ms"]}
    return meta


def export_name(genotype: str, fmt: str) -> str:
    digest = hashlib.sha256(genotype.encode()).hexdigest()[:16]
    return f"{digest}.{exports.suffix(fmt)}"


def export_stage(ctx: Context, fronts: Mapping[str, list[CandidateRecord]]) -> int:
    """Export every Pareto subnet in every format; returns how many artifacts were written.

    Exports go out in small waves (in parallel on Ray), so a cancel is seen between waves and
    progress is written as they land."""
    front: dict[str, CandidateRecord] = {}
    for rows in fronts.values():
        for c in rows:
            front.setdefault(c.genotype, c)
    kinds = {fmt: exports.artifact_kind(fmt) for fmt in exports.names()}
    total = len(front) * len(kinds)
    todo = [
        (c, fmt, kind)
        for c in front.values()
        for fmt, kind in kinds.items()
        if not ctx.sink.has_artifact(c.id, c.genotype, kind)
    ]
    done = total - len(todo)
    ctx.sink.report_stage(ExportingProgress(done, total))
    for i in range(0, len(todo), EXPORT_WAVE):
        ctx.check_cancel(every_s=0)
        wave = todo[i : i + EXPORT_WAVE]
        calls = [
            (
                ctx.inputs.checkpoint(),
                ctx.inputs.data,
                dict(c.arch),
                fmt,
                ctx.inputs.export_dir / export_name(c.genotype, fmt),
                ctx.inputs.seed,
                export_metadata(c, c.device),
            )
            for c, fmt, _ in wave
        ]
        results = ctx.engine.map(write_export, calls, gpus=ctx.inputs.gpus)
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
        ctx.sink.report_stage(ExportingProgress(done, total))
    return len(todo)
