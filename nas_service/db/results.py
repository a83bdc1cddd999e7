"""Training metrics, candidates and the Pareto front. Inserts are idempotent so a resumed job
that replays its work never duplicates a row."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from nas_service.db.dialect import insert_for
from nas_service.db.models import Candidate, Job, TrainMetric
from nas_service.db.types import utcnow
from nas_service.domain.states import CandidateSource


@dataclass
class MetricRow:
    """One training log line; ``seq`` is unique per job and makes re-sending harmless."""

    seq: int
    metrics: dict[str, Any]
    phase: str = ""
    epoch: int = 0
    step: int = 0


@dataclass
class CandidateIn:
    """A candidate to store. ``genotype`` is the space's canonical encoding (``encode``)."""

    arch: dict[str, Any]
    genotype: Sequence[int] | str
    device: str = "cpu"
    arch_short: str = ""
    accuracy: float | None = None
    latency_ms: float | None = None
    flops: int | None = None
    params: int | None = None
    predicted_accuracy: float | None = None
    predicted_latency_ms: float | None = None
    test_accuracy: float | None = None
    source: CandidateSource = CandidateSource.predicted
    feasible: bool = True
    objectives: dict[str, Any] = field(default_factory=dict)


def genotype_key(genotype: Sequence[int] | str) -> str:
    """The text stored in ``candidates.genotype``: genes joined by commas."""
    if isinstance(genotype, str):
        return genotype
    return ",".join(str(int(g)) for g in genotype)


def add_train_metrics(s: Session, job_id: uuid.UUID, rows: Iterable[MetricRow]) -> int:
    """Insert metric rows, ignoring seqs already stored. Returns how many were new."""
    values = [
        {
            "job_id": job_id,
            "seq": r.seq,
            "phase": r.phase,
            "epoch": r.epoch,
            "step": r.step,
            "metrics": r.metrics,
            "ts": utcnow(),
        }
        for r in rows
    ]
    if not values:
        return 0
    stmt = (
        insert_for(s, TrainMetric)
        .values(values)
        .on_conflict_do_nothing(index_elements=["job_id", "seq"])
    )
    return len(s.execute(stmt.returning(TrainMetric.seq)).all())


def list_train_metrics(
    s: Session, job_id: uuid.UUID, *, after: int = -1, limit: int = 1000
) -> list[TrainMetric]:
    q = select(TrainMetric).where(TrainMetric.job_id == job_id, TrainMetric.seq > after)
    return list(s.scalars(q.order_by(TrainMetric.seq).limit(limit)))


def last_metric_seq(s: Session, job_id: uuid.UUID) -> int:
    """The highest stored seq (-1 if none): a resumed run continues numbering after it."""
    q = select(TrainMetric.seq).where(TrainMetric.job_id == job_id)
    top = s.scalar(q.order_by(TrainMetric.seq.desc()).limit(1))
    return -1 if top is None else int(top)


def upsert_candidates(s: Session, job_id: uuid.UUID, rows: Sequence[CandidateIn]) -> list[int]:
    """Store candidates; returns their ids in input order.

    A (job, genotype, device) already stored is left alone, unless the new row is *measured*:
    then its measured values replace the earlier ones (the predictions are kept).
    """
    if not rows:
        return []
    now = utcnow()
    values: list[dict[str, Any]] = [
        {
            "job_id": job_id,
            "arch": dict(r.arch),
            "genotype": genotype_key(r.genotype),
            "arch_short": r.arch_short,
            "device": r.device,
            "accuracy": r.accuracy,
            "latency_ms": r.latency_ms,
            "flops": r.flops,
            "params": r.params,
            "predicted_accuracy": r.predicted_accuracy,
            "predicted_latency_ms": r.predicted_latency_ms,
            "test_accuracy": r.test_accuracy,
            "source": CandidateSource(r.source).value,
            "feasible": r.feasible,
            "is_pareto": False,
            "objectives": dict(r.objectives),
            "created_at": now,
        }
        for r in rows
    ]
    # Deduplicate within the batch too: ON CONFLICT cannot touch one row twice per statement.
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for v in values:
        key = (v["genotype"], v["device"])
        if key not in by_key or v["source"] == CandidateSource.measured.value:
            by_key[key] = v
    ins = insert_for(s, Candidate)
    ex = ins.excluded
    t = Candidate.__table__.c
    stmt = ins.values(list(by_key.values())).on_conflict_do_update(
        index_elements=["job_id", "genotype", "device"],
        set_={
            "accuracy": ex.accuracy,
            "latency_ms": ex.latency_ms,
            "flops": ex.flops,
            "params": ex.params,
            "feasible": ex.feasible,
            "test_accuracy": ex.test_accuracy,
            "objectives": ex.objectives,
            "source": ex.source,
            "predicted_accuracy": case(
                (t.predicted_accuracy.is_(None), ex.predicted_accuracy),
                else_=t.predicted_accuracy,
            ),
            "predicted_latency_ms": case(
                (t.predicted_latency_ms.is_(None), ex.predicted_latency_ms),
                else_=t.predicted_latency_ms,
            ),
        },
        where=ex.source == CandidateSource.measured.value,
    )
    s.execute(stmt)
    keys = {genotype_key(r.genotype) for r in rows}
    q = select(Candidate.id, Candidate.genotype, Candidate.device).where(
        Candidate.job_id == job_id, Candidate.genotype.in_(keys)
    )
    ids = {(g, d): cid for cid, g, d in s.execute(q).all()}
    return [ids[(genotype_key(r.genotype), r.device)] for r in rows]


def candidates_for_replay(s: Session, job_id: uuid.UUID) -> list[Candidate]:
    """Every stored candidate of the job, oldest first, for ``Searcher.replay``."""
    q = select(Candidate).where(Candidate.job_id == job_id).order_by(Candidate.id)
    return list(s.scalars(q))


def set_pareto(
    s: Session,
    job_id: uuid.UUID,
    candidate_ids: Iterable[int],
    *,
    hypervolume: float | None = None,
    evaluations: int | None = None,
    source: str | None = None,
) -> int:
    """Make exactly ``candidate_ids`` the job's front; bump the job's pareto_version (the ETag
    of ``GET /jobs/{id}/pareto``) and append to its hypervolume history. Returns the version."""
    ids = sorted({int(i) for i in candidate_ids})
    s.execute(
        update(Candidate)
        .where(Candidate.job_id == job_id)
        .where((Candidate.is_pareto.is_(True)) | (Candidate.id.in_(ids)))
        .values(is_pareto=Candidate.id.in_(ids)),
        execution_options={"synchronize_session": False},
    )
    # Row lock: one writer (the job's runner) at a time appends to the history.
    q = select(Job).where(Job.id == job_id).with_for_update()
    job = s.scalars(q.execution_options(populate_existing=True)).one()
    version = job.pareto_version + 1
    history = list(job.pareto_history or [])
    if hypervolume is not None:
        history.append(
            {
                "version": version,
                "evaluations": evaluations,
                "hypervolume": float(hypervolume),
                "size": len(ids),
                "source": source,
                "ts": utcnow().isoformat(),
            }
        )
    # Through the ORM object (not a Core UPDATE) so a Job the caller holds stays current.
    job.pareto_version = version
    job.pareto_history = history
    s.flush()
    return version
