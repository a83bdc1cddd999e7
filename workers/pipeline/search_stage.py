"""The search stage for one target device.

Stored candidates are replayed into the searcher first, so a resumed search continues where it
stopped and never proposes (or stores) an architecture twice. After every batch the candidates,
the current Pareto front and its hypervolume are written, so the front is visible while the
job runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from workers.pipeline import tools
from workers.pipeline.front import front_of, is_feasible, job_objectives
from workers.pipeline.job import DeviceInfo
from workers.pipeline.sink import CandidateRecord
from workers.search.pareto import reference_point

if TYPE_CHECKING:
    from workers.pipeline.stages import Context

LatencyFn = Callable[[Mapping[str, int]], float]

DEFAULT_BATCH = 10


def genotype_key(genes: Sequence[int]) -> str:
    return ",".join(str(int(g)) for g in genes)


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
    """Accuracy and loss from the supernet (reusing ``known`` scores), analytic MACs and
    parameters, predicted latency where the device has a table."""
    space = ctx.space
    keys = [genotype_key(space.encode(a)) for a in archs]
    todo = [a for a, k in zip(archs, keys, strict=True) if k not in known]
    if todo:
        results = ctx.engine.evaluate(
            ctx.inputs.checkpoint(), ctx.inputs.data, todo, ctx.inputs.seed
        )
        for a, r in zip(todo, results, strict=True):
            known[genotype_key(space.encode(a))] = {
                "accuracy": float(r["accuracy"]),
                "loss": float(r["loss"]),
            }
    out = []
    for a, k in zip(archs, keys, strict=True):
        ev = dict(known[k])
        ev["flops"] = float(space.flops(a))
        ev["params"] = float(space.params(a))
        if latency is not None:
            ev["latency_ms"] = float(latency(a))
        out.append(ev)
    return out


def search_device(ctx: Context, device: DeviceInfo, index: int, latency: LatencyFn | None) -> None:
    spec = ctx.inputs.spec
    space = ctx.space
    objectives = job_objectives(spec)
    budget = spec.search.budget
    batch = batch_size_of(ctx)
    ref = job_reference(ctx, latency)

    rows = ctx.sink.stored_candidates(device.name)
    # Accuracy does not depend on the device: reuse what other devices' searches measured.
    known: dict[str, dict[str, float]] = {}
    for c in ctx.sink.stored_candidates():
        if "accuracy" in c.metrics and "loss" in c.metrics:
            known[c.genotype] = {"accuracy": c.metrics["accuracy"], "loss": c.metrics["loss"]}

    searcher = tools.make_searcher(
        spec.search.algorithm,
        space,
        objectives,
        seed=ctx.inputs.seed + index,
        batch_size=batch,
        options=spec.search.options,
        population=spec.search.population,
    )
    if rows:
        searcher.replay([(c.arch, {**c.metrics, **c.predicted}) for c in rows])
    done = {c.genotype for c in rows}
    progress = {"device": device.name, "evaluated": len(done), "budget": budget}
    ctx.sink.report_stage("searching", progress)
    stalls = 0
    while len(done) < budget:
        ctx.check_cancel()
        archs = searcher.ask(min(batch, budget - len(done)))
        if not archs:
            break  # the space has no unseen architecture left
        evals = score(ctx, archs, latency, known)
        ctx.check_cancel(every_s=0)
        searcher.tell(archs, evals)
        records = []
        for a, ev in zip(archs, evals, strict=True):
            g = genotype_key(space.encode(a))
            if g in done:
                continue
            records.append(
                CandidateRecord(
                    device=device.name,
                    genotype=g,
                    arch=dict(space.canonical(a)),
                    arch_short=tools.short(space, a),
                    metrics=ev,
                    feasible=is_feasible(ev, objectives),
                )
            )
            done.add(g)
        stalls = 0 if records else stalls + 1
        if stalls > 3:
            break
        rows += ctx.sink.add_candidates(records)
        front, hv = front_of(rows, objectives, ref)
        ctx.sink.set_pareto(device.name, [c.genotype for c in front], hv)
        progress = {
            "device": device.name,
            "evaluated": len(done),
            "budget": budget,
            "pareto": len(front),
            "hypervolume": hv,
        }
        ctx.sink.report_stage("searching", progress)
    # Also covers a resumed search whose budget was already spent before the interruption.
    front, hv = front_of(rows, objectives, ref)
    ctx.sink.set_pareto(device.name, [c.genotype for c in front], hv)
