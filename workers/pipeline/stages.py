"""The stages of a job: training -> predicting -> searching -> measuring -> exporting.

Every stage is resumable: training continues from the checkpoints in the job's run directory
(or is skipped once ``final.pt`` exists, or when the job reuses another job's supernet); the
search replays the candidates already stored; re-measurement skips measured rows; export skips
artifacts that exist. Cancellation is checked between steps and raises ``JobCancelled``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from search_spaces import SearchSpace, get_space
from workers.pipeline import tools
from workers.pipeline.engine import Engine, TrainRequest
from workers.pipeline.finish import export_stage, measure_stage
from workers.pipeline.front import job_objectives, needs_latency
from workers.pipeline.job import JobInputs
from workers.pipeline.search_stage import LatencyFn, search_device
from workers.pipeline.sink import JobCancelled, JobSink

# Dataset-derived options that must agree with the data whatever the user asked for.
_DATA_BOUND_OPTIONS = ("in_features", "in_channels", "num_classes")


@dataclass
class PipelineResult:
    checkpoint: str
    pareto: dict[str, list[str]] = field(default_factory=dict)
    hypervolume: dict[str, float] = field(default_factory=dict)
    artifacts: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Context:
    inputs: JobInputs
    sink: JobSink
    engine: Engine
    space: SearchSpace
    _last_cancel_check: float = 0.0
    _cancelled: bool = False

    def check_cancel(self, *, every_s: float = 0.5) -> None:
        """Raise ``JobCancelled`` when the flag is set (the sink is asked at most every
        ``every_s`` seconds, so a tight loop does not hammer the store)."""
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= every_s:
            self._last_cancel_check = now
            self._cancelled = self.sink.should_cancel()
        if self._cancelled:
            raise JobCancelled(self.inputs.job_id)


def build_space(inputs: JobInputs) -> SearchSpace:
    """The job's space with the options its dataset requires (input shape, classes)."""
    data = tools.load_data(inputs.data)
    fitted = tools.space_options_for(inputs.spec.space.id, data)
    options: dict[str, Any] = {**fitted, **inputs.spec.space.options}
    for key in _DATA_BOUND_OPTIONS:
        if key in fitted:
            options[key] = fitted[key]
    return get_space(inputs.spec.space.id, **options)


def run_pipeline(inputs: JobInputs, sink: JobSink, engine: Engine) -> PipelineResult:
    timings: dict[str, float] = {}
    inputs.run_dir.mkdir(parents=True, exist_ok=True)
    if inputs.supernet_checkpoint is not None:
        space = tools.checkpoint_space(inputs.supernet_checkpoint)
    else:
        space = build_space(inputs)
    ctx = Context(inputs, sink, engine, space)
    ctx.check_cancel(every_s=0)

    t = time.monotonic()
    checkpoint = training_stage(ctx)
    timings["training_s"] = time.monotonic() - t

    t = time.monotonic()
    latency = predicting_stage(ctx)
    timings["predicting_s"] = time.monotonic() - t

    t = time.monotonic()
    for index, device in enumerate(inputs.devices):
        search_device(ctx, device, index, latency.get(device.name))
    timings["searching_s"] = time.monotonic() - t

    t = time.monotonic()
    fronts, hvs = measure_stage(ctx, latency)
    timings["measuring_s"] = time.monotonic() - t

    t = time.monotonic()
    artifacts = export_stage(ctx, fronts)
    timings["exporting_s"] = time.monotonic() - t
    return PipelineResult(
        checkpoint=str(checkpoint),
        pareto={d: [c.genotype for c in rows] for d, rows in fronts.items()},
        hypervolume=hvs,
        artifacts=artifacts,
        timings=timings,
    )


def training_stage(ctx: Context) -> str:
    inputs = ctx.inputs
    final = inputs.checkpoint()
    if inputs.supernet_checkpoint is not None:
        ctx.sink.report_stage("training", {"skipped": True, "reused": str(final)})
        ctx.sink.set_checkpoint(str(inputs.run_dir), str(final))
        return str(final)
    if final.is_file():
        ctx.sink.set_checkpoint(str(inputs.run_dir), str(final))
        return str(final)
    ctx.sink.set_checkpoint(str(inputs.run_dir), None)
    ctx.sink.report_stage("training", {"epoch": 0})
    req = TrainRequest(
        space_spec=ctx.space.spec(),
        data=inputs.data,
        training=inputs.spec.training.model_dump(mode="json"),
        run_dir=inputs.train_dir,
        seed=inputs.seed,
    )

    def on_epoch(info: dict[str, Any]) -> None:
        if "resumed_from" in info:
            ctx.sink.add_event(
                "training_resumed",
                f"training resumed from checkpoint {info['resumed_from']}",
                {
                    "checkpoint": info["resumed_from"],
                    "phase": info.get("phase"),
                    "epoch": info.get("epoch"),
                },
            )
        row = tools.metric_row(info)
        ctx.sink.add_metrics([row])
        ctx.sink.report_stage("training", tools.training_progress(info))

    def should_stop() -> bool:
        try:
            ctx.check_cancel()
        except JobCancelled:
            return True
        return False

    try:
        path = ctx.engine.train(req, on_epoch, should_stop)
    except JobCancelled:
        raise
    except Exception as exc:
        # The trainer stops with its own exception when asked to; report it as a cancel.
        if ctx.sink.should_cancel():
            raise JobCancelled(inputs.job_id) from exc
        raise
    ctx.check_cancel(every_s=0)
    ctx.sink.set_checkpoint(str(inputs.run_dir), str(path))
    return str(path)


def predicting_stage(ctx: Context) -> dict[str, LatencyFn]:
    """A latency lookup table per target device, when latency is an objective."""
    out: dict[str, LatencyFn] = {}
    if not needs_latency(ctx.inputs.spec):
        ctx.sink.report_stage("predicting", {"latency_tables": 0})
        return out
    devices = ctx.inputs.devices
    for i, device in enumerate(devices):
        ctx.check_cancel()
        ctx.sink.report_stage("predicting", {"device": device.name, "done": i, "of": len(devices)})
        table = ctx.engine.latency_table(device, ctx.space.spec(), ctx.inputs.cache_dir)
        out[device.name] = _lut_fn(ctx.space, table)
    ctx.sink.report_stage("predicting", {"latency_tables": len(out), "of": len(devices)})
    return out


def _lut_fn(space: SearchSpace, table: Any) -> Callable[[Mapping[str, int]], float]:
    predictor = tools.load_latency_table(table, space)

    def fn(arch: Mapping[str, int]) -> float:
        return float(predictor(arch))

    return fn


__all__ = ["Context", "PipelineResult", "build_space", "job_objectives", "run_pipeline"]
