"""The training stage: train the job's supernet through the engine (resuming from the
checkpoints of an earlier attempt), or skip it when the job reuses another job's supernet or
its own ``final.pt`` exists. Every epoch is logged and reported as the job's progress, and
step-level progress (images/s, ETA) is reported between epochs. The job's ``resources``
(data-parallel workers, CPUs and GPUs per worker, precision) travel in the request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.pipeline.records import (
    EpochReport,
    TrainingProgress,
    TrainRequest,
    TrainResources,
)
from workers.pipeline.sink import JobCancelled

if TYPE_CHECKING:
    from workers.pipeline.stages import Context


def training_stage(ctx: Context) -> str:
    inputs = ctx.inputs
    final = inputs.checkpoint()
    if inputs.supernet_checkpoint is not None:
        ctx.sink.report_stage(TrainingProgress(skipped=True, reused=str(final)))
        ctx.sink.set_checkpoint(str(inputs.run_dir), str(final))
        return str(final)
    if final.is_file():
        ctx.sink.set_checkpoint(str(inputs.run_dir), str(final))
        return str(final)
    ctx.sink.set_checkpoint(str(inputs.run_dir), None)
    ctx.sink.report_stage(TrainingProgress(epoch=0))
    req = TrainRequest(
        space_spec=ctx.space.spec(),
        data=inputs.data,
        training=inputs.spec.training.model_dump(mode="json"),
        run_dir=inputs.train_dir,
        seed=inputs.seed,
        resources=TrainResources.from_json(inputs.spec.resources.model_dump(mode="json")),
    )

    def on_epoch(report: EpochReport) -> None:
        if report.resumed_from is not None:
            ctx.sink.add_event(
                "training_resumed",
                f"training resumed from checkpoint {report.resumed_from}",
                {"checkpoint": report.resumed_from, "phase": report.phase, "epoch": report.epoch},
            )
        ctx.sink.add_epoch(report)
        ctx.sink.report_stage(TrainingProgress.of(report))

    def should_stop() -> bool:
        try:
            ctx.check_cancel()
        except JobCancelled:
            return True
        return False

    def on_progress(progress: TrainingProgress) -> None:
        # Step-level: images/s and ETA between epoch reports (also keeps the stall guard fed).
        ctx.sink.report_stage(progress)

    try:
        path = ctx.engine.train(req, on_epoch, should_stop, on_progress)
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
