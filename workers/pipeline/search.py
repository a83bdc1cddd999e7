"""The searching stage for one target device, on the shared loop of ``workers.search.driver``.

Stored candidates are replayed into the searcher first, so a resumed search continues where it
stopped and never proposes (or stores) an architecture twice. After every batch the candidates,
the current Pareto front and its hypervolume are written, so the front is visible while the
job runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from nas_service.catalog import objectives
from search_spaces import SearchSpace
from workers.pipeline.front import front_of, is_feasible, job_objectives
from workers.pipeline.job import DeviceInfo
from workers.pipeline.records import SearchingProgress
from workers.pipeline.sink import CandidateRecord
from workers.pipeline.work.evaluation import evaluate_all
from workers.pipeline.work.latency import LatencyFn
from workers.search.driver import build_searcher, run_search
from workers.search.pareto import reference_point

if TYPE_CHECKING:
    from workers.pipeline.stages import Context

DEFAULT_BATCH = 10


def genotype_key(genes: Sequence[int]) -> str:
    return ",".join(str(int(g)) for g in genes)


def arch_short(space: SearchSpace, arch: Mapping[str, int]) -> str:
    """The space's short name of an arch ("" for a space without one)."""
    fn = getattr(space, "short", None)
    return str(fn(arch)) if callable(fn) else ""


def batch_size_of(ctx: Context) -> int:
    s = ctx.inputs.spec.search
    return max(1, min(s.budget, s.population or DEFAULT_BATCH))


def job_reference(ctx: Context, latency: LatencyFn | None) -> list[float]:
    return reference_point(job_objectives(ctx.inputs.spec), ctx.space, latency_fn=latency)


def score(
    ctx: Context,
    archs: Sequence[Mapping[str, int]],
    latency: LatencyFn | None,
    known: dict[str, dict[str, float]],
) -> list[dict[str, float]]:
    """Accuracy and loss from the supernet (reusing ``known`` scores), every analytic objective
    of the catalog (MACs, parameters, ...), predicted latency where the device has a table."""
    space = ctx.space
    analytic = objectives.analytic()
    keys = [genotype_key(space.encode(a)) for a in archs]
    todo = [a for a, k in zip(archs, keys, strict=True) if k not in known]
    if todo:
        inputs = ctx.inputs
        results = evaluate_all(
            ctx.engine, inputs.checkpoint(), inputs.data, todo, inputs.seed, gpus=inputs.gpus
        )
        for a, r in zip(todo, results, strict=True):
            known[genotype_key(space.encode(a))] = {
                "accuracy": float(r["accuracy"]),
                "loss": float(r["loss"]),
            }
    out = []
    for a, k in zip(archs, keys, strict=True):
        ev = dict(known[k])
        for name, fn in analytic.items():
            ev[name] = float(fn(space, a))
        if latency is not None:
            ev["latency_ms"] = float(latency(a))
        out.append(ev)
    return out


def search_device(ctx: Context, device: DeviceInfo, index: int, latency: LatencyFn | None) -> None:
    spec = ctx.inputs.spec
    space = ctx.space
    objectives = job_objectives(spec)
    budget = spec.search.budget
    ref = job_reference(ctx, latency)

    rows = ctx.sink.stored_candidates(device.name)
    # Accuracy does not depend on the device: reuse what other devices' searches measured.
    known: dict[str, dict[str, float]] = {}
    for c in ctx.sink.stored_candidates():
        if "accuracy" in c.metrics and "loss" in c.metrics:
            known[c.genotype] = {"accuracy": c.metrics["accuracy"], "loss": c.metrics["loss"]}

    batch = batch_size_of(ctx)
    searcher = build_searcher(
        spec.search.algorithm,
        space,
        objectives,
        seed=ctx.inputs.seed + index,
        batch_size=batch,
        options=spec.search.options,
        population=spec.search.population,
        latency=latency,
    )
    if rows:
        searcher.replay([(c.arch, {**c.metrics, **c.predicted}) for c in rows])
    seen = {c.genotype for c in rows}
    ctx.sink.report_stage(SearchingProgress(device.name, len(seen), budget))

    def record(archs: list[dict[str, int]], evals: list[dict[str, float]]) -> None:
        nonlocal rows
        records = [
            CandidateRecord(
                device=device.name,
                genotype=genotype_key(space.encode(a)),
                arch=dict(space.canonical(a)),
                arch_short=arch_short(space, a),
                metrics=ev,
                feasible=is_feasible(ev, objectives),
            )
            for a, ev in zip(archs, evals, strict=True)
        ]
        rows += ctx.sink.add_candidates(records)
        seen.update(r.genotype for r in records)
        front, hv = front_of(rows, objectives, ref)
        ctx.sink.set_pareto(device.name, [c.genotype for c in front], hv)
        ctx.sink.report_stage(SearchingProgress(device.name, len(seen), budget, len(front), hv))

    run_search(
        searcher,
        budget=budget,
        batch=batch,
        evaluate=lambda archs: score(ctx, archs, latency, known),
        record=record,
        key=lambda a: genotype_key(space.encode(a)),
        seen=seen,
        before_ask=ctx.check_cancel,
        after_evaluate=lambda: ctx.check_cancel(every_s=0),
    )
    # Also covers a resumed search whose budget was already spent before the interruption.
    front, hv = front_of(rows, objectives, ref)
    ctx.sink.set_pareto(device.name, [c.genotype for c in front], hv)
