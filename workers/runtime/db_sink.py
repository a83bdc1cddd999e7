"""The ``JobSink`` of a real job: every write goes to the store through the repository
functions, each in its own short transaction, guarded by the worker's claim on the job.

This is the DB boundary: the pipeline's typed records (epoch reports, progress, candidates,
artifacts) are encoded for their tables here, and only here."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from nas_service.db import Candidate, Database, jobs, results
from nas_service.db import artifacts as arts
from nas_service.domain import ArtifactStatus, CandidateSource
from workers.pipeline.records import EpochReport, Progress
from workers.pipeline.sink import ArtifactRecord, CandidateRecord


class JobLost(Exception):
    """The job is no longer running under this worker (reaped, or finished elsewhere)."""


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else round(float(v))


def to_record(c: Candidate) -> CandidateRecord:
    metrics = {k: float(v) for k, v in (c.objectives or {}).items() if v is not None}
    predicted: dict[str, float] = {}
    if c.source == CandidateSource.measured.value:
        if c.predicted_accuracy is not None:
            predicted["accuracy"] = float(c.predicted_accuracy)
        if c.predicted_latency_ms is not None:
            predicted["latency_ms"] = float(c.predicted_latency_ms)
    return CandidateRecord(
        device=c.device,
        genotype=c.genotype,
        arch={k: int(v) for k, v in c.arch.items()},
        arch_short=c.arch_short,
        metrics=metrics,
        feasible=bool(c.feasible),
        source=c.source,
        predicted=predicted,
        id=c.id,
    )


def to_input(r: CandidateRecord) -> results.CandidateIn:
    m = r.metrics
    measured = r.source == CandidateSource.measured.value
    return results.CandidateIn(
        arch=dict(r.arch),
        genotype=r.genotype,
        device=r.device,
        arch_short=r.arch_short,
        accuracy=_opt_float(m.get("accuracy")),
        latency_ms=_opt_float(m.get("latency_ms")),
        flops=_opt_int(m.get("flops")),
        params=_opt_int(m.get("params")),
        predicted_accuracy=_opt_float(
            r.predicted.get("accuracy") if measured else m.get("accuracy")
        ),
        predicted_latency_ms=_opt_float(
            r.predicted.get("latency_ms") if measured else m.get("latency_ms")
        ),
        test_accuracy=_opt_float(m.get("test_accuracy")),
        source=CandidateSource(r.source),
        feasible=r.feasible,
        objectives=dict(m),
    )


class DbSink:
    def __init__(self, db: Database, job_id: uuid.UUID, owner_id: int, worker_id: str):
        self.db = db
        self.job_id = job_id
        self.owner_id = owner_id
        self.worker_id = worker_id
        self._stage: str | None = None
        with db.transaction() as s:
            self._seq = results.last_metric_seq(s, job_id) + 1
            logged = results.list_train_metrics(s, job_id, limit=1_000_000)
            self._epochs = {(m.phase, m.epoch) for m in logged}
            stored = results.candidates_for_replay(s, job_id)
        self._front: dict[str, set[int]] = {}
        for c in stored:
            if c.is_pareto:
                self._front.setdefault(c.device, set()).add(c.id)

    def report_stage(self, progress: Progress) -> None:
        stage, data = progress.stage, progress.to_json()
        with self.db.transaction() as s:
            flag = jobs.heartbeat(
                s, self.job_id, self.worker_id, stage=stage, progress={"stage": stage, **data}
            )
            if flag is None:
                raise JobLost(str(self.job_id))
            if stage != self._stage:
                jobs.record_event(s, self.job_id, "stage", message=stage, data=data)
        self._stage = stage

    def add_event(self, kind: str, message: str, data: Mapping[str, Any]) -> None:
        with self.db.transaction() as s:
            jobs.record_event(s, self.job_id, kind, message=message, data=dict(data))

    def add_epoch(self, report: EpochReport) -> None:
        key = (report.phase, report.epoch)
        if key in self._epochs:
            return
        row = report.metric_row()
        metric = results.MetricRow(
            seq=self._seq,
            metrics=row["metrics"],
            phase=row["phase"],
            epoch=row["epoch"],
            step=row["step"],
        )
        with self.db.transaction() as s:
            results.add_train_metrics(s, self.job_id, [metric])
        self._epochs.add(key)
        self._seq += 1

    def add_candidates(self, rows: Sequence[CandidateRecord]) -> list[CandidateRecord]:
        if not rows:
            return []
        with self.db.transaction() as s:
            ids = results.upsert_candidates(s, self.job_id, [to_input(r) for r in rows])
        return [replace(r, id=i) for r, i in zip(rows, ids, strict=True)]

    def stored_candidates(self, device: str | None = None) -> list[CandidateRecord]:
        with self.db.transaction() as s:
            rows = results.candidates_for_replay(s, self.job_id)
        return [to_record(c) for c in rows if device is None or c.device == device]

    def set_pareto(self, device: str, genotypes: Sequence[str], hypervolume: float | None) -> None:
        wanted = set(genotypes)
        with self.db.transaction() as s:
            rows = results.candidates_for_replay(s, self.job_id)
            mine = [c for c in rows if c.device == device]
            self._front[device] = {c.id for c in mine if c.genotype in wanted}
            measured = any(c.source == CandidateSource.measured.value for c in mine)
            ids = set().union(*self._front.values())
            results.set_pareto(
                s,
                self.job_id,
                ids,
                hypervolume=hypervolume,
                evaluations=len(mine),
                source=f"{device}:{'measured' if measured else 'predicted'}",
            )

    def add_artifact(self, artifact: ArtifactRecord) -> None:
        kind = artifact.kind
        with self.db.transaction() as s:
            found = (
                arts.find_artifact(s, artifact.candidate_id, kind)
                if artifact.candidate_id is not None
                else None
            )
            if found is None:
                arts.create_artifact(
                    s,
                    self.owner_id,
                    kind,
                    job_id=self.job_id,
                    candidate_id=artifact.candidate_id,
                    status=ArtifactStatus.ready,
                    uri=artifact.uri,
                    sha256=artifact.sha256,
                    size_bytes=artifact.size_bytes,
                )
            else:
                arts.mark_artifact_ready(
                    s,
                    found.id,
                    uri=artifact.uri,
                    sha256=artifact.sha256,
                    size_bytes=artifact.size_bytes,
                )

    def has_artifact(self, candidate_id: int | None, genotype: str, kind: str) -> bool:
        if candidate_id is None:
            return False
        with self.db.transaction() as s:
            found = arts.find_artifact(s, candidate_id, kind)
        return (
            found is not None
            and found.status == ArtifactStatus.ready.value
            and found.uri is not None
            and Path(found.uri).is_file()
        )

    def set_checkpoint(self, run_dir: str, checkpoint_uri: str | None) -> None:
        with self.db.transaction() as s:
            jobs.set_run_info(s, self.job_id, run_dir=run_dir, checkpoint_uri=checkpoint_uri)

    def should_cancel(self) -> bool:
        with self.db.transaction() as s:
            job = jobs.get_job(s, self.job_id)
            if job is None or job.status != "running" or job.worker_id != self.worker_id:
                raise JobLost(str(self.job_id))
            return bool(job.cancel_requested)
