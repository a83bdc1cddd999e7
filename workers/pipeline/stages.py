"""The stages of a job: training -> predicting -> searching -> measuring -> exporting, one
module each (``train``, ``predict``, ``search``, ``measure``, ``export``); this module runs them
in order over one :class:`Context`.

Every stage is resumable: training continues from the checkpoints in the job's run directory
(or is skipped once ``final.pt`` exists, or when the job reuses another job's supernet); the
search replays the candidates already stored; re-measurement skips measured rows; export skips
artifacts that exist. Cancellation is checked between steps and raises ``JobCancelled``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from search_spaces import SearchSpace
from workers.pipeline.engine import Engine
from workers.pipeline.export import export_stage
from workers.pipeline.front import job_objectives
from workers.pipeline.job import JobInputs
from workers.pipeline.measure import measure_stage
from workers.pipeline.predict import predicting_stage
from workers.pipeline.search import search_device
from workers.pipeline.sink import JobCancelled, JobSink
from workers.pipeline.train import training_stage
from workers.pipeline.work.loading import checkpoint_space, load_data


@dataclass
class PipelineResult:
    checkpoint: str
    pareto: dict[str, list[str]] = field(default_factory=dict)
    hypervolume: dict[str, float] = field(default_factory=dict)
    artifacts: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # What the job found: a front per device, or no feasible subnet and why (outcome.py).
    outcome: dict[str, Any] = field(default_factory=dict)


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
    """The job's space fitted to its dataset by the rule the API validated at submission
    (``search_spaces.fitting``)."""
    from workers.data.spaces import space_for

    data = load_data(inputs.data)
    return space_for(inputs.spec.space.id, inputs.spec.space.options, data)


def run_pipeline(inputs: JobInputs, sink: JobSink, engine: Engine) -> PipelineResult:
    timings: dict[str, float] = {}
    inputs.run_dir.mkdir(parents=True, exist_ok=True)
    if inputs.supernet_checkpoint is not None:
        space = checkpoint_space(inputs.supernet_checkpoint)
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
    fronts, hvs, outcome = measure_stage(ctx, latency)
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
        outcome=outcome,
    )


__all__ = ["Context", "PipelineResult", "build_space", "job_objectives", "run_pipeline"]
