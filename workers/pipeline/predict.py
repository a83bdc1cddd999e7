"""The predicting stage: a latency lookup table per target device, when latency is an
objective. Each table is built on its device (once per device and space, kept in the shared
cache folder) and predicts the latency the search sees."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.pipeline.front import needs_latency
from workers.pipeline.records import PredictingProgress
from workers.pipeline.work import latency as work_latency
from workers.pipeline.work.latency import LatencyFn

if TYPE_CHECKING:
    from workers.pipeline.stages import Context


def predicting_stage(ctx: Context) -> dict[str, LatencyFn]:
    """The latency predictor of each device, by device name (none without a latency
    objective)."""
    out: dict[str, LatencyFn] = {}
    if not needs_latency(ctx.inputs.spec):
        ctx.sink.report_stage(PredictingProgress(latency_tables=0))
        return out
    devices = ctx.inputs.devices
    for i, device in enumerate(devices):
        ctx.check_cancel()
        ctx.sink.report_stage(PredictingProgress(device=device.name, done=i, of=len(devices)))
        table = ctx.engine.call(
            work_latency.build_table,
            device,
            ctx.space.spec(),
            ctx.inputs.cache_dir,
            resources=work_latency.device_resources(device),
        )
        out[device.name] = work_latency.load_table(table)
    ctx.sink.report_stage(PredictingProgress(latency_tables=len(out), of=len(devices)))
    return out
