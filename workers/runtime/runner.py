"""``run_job``: load a claimed job from the store, run its pipeline, record how it ended.

The runner holds the dispatcher's claim (``worker_id``): every terminal transition is guarded
by it, so a job that was reaped and claimed elsewhere in the meantime is never touched.
Also ``run_export``: produce one export a user asked for (any candidate, any format).
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from nas_service.catalog import datasets, exports
from nas_service.db import Database, jobs
from nas_service.db import artifacts as arts
from nas_service.db import datasets as dataset_repo
from nas_service.db import devices as device_repo
from nas_service.db.queries import get_candidate
from nas_service.domain import JobSpec, JobStatus
from nas_service.services.job_files import log_path
from nas_service.settings import Settings
from workers.pipeline import DataRef, DeviceInfo, Engine, JobCancelled, JobInputs, run_pipeline
from workers.pipeline.export import export_metadata, export_name
from workers.pipeline.records import EpochReport, Progress
from workers.pipeline.sink import ArtifactRecord
from workers.pipeline.work.export import write_export
from workers.runtime.db_sink import DbSink, JobLost, to_record

log = logging.getLogger(__name__)
# The job's log (GET /jobs/{id}/logs): what these loggers record while the job runs here.
JOB_LOGGERS = ("workers", "nas_service")


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        t = time.gmtime(record.created)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


@contextmanager
def job_log(settings: Settings, job_id: uuid.UUID) -> Iterator[Path]:
    """Append this process's ``workers`` and ``nas_service`` log records (INFO and up) to the
    job's ``job.log`` in its run directory while the job runs here."""
    path = log_path(settings, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(n) for n in JOB_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield path
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


def _numbers(metrics: Mapping[str, Any], limit: int = 8) -> str:
    """The epoch's numbers as ``name value`` (nested ones dotted), losses and accuracies first."""
    flat: list[tuple[str, float]] = []

    def walk(prefix: str, m: Mapping[str, Any]) -> None:
        for k, v in m.items():
            name = f"{prefix}{k}"
            if isinstance(v, Mapping):
                walk(name + ".", v)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                flat.append((name, v))

    walk("", metrics)
    first = [x for x in flat if "loss" in x[0] or "accuracy" in x[0]]
    rest = [x for x in flat if x not in first]
    return ", ".join(f"{k} {v:.4g}" for k, v in (first + rest)[:limit])


class LoggedSink(DbSink):
    """The DB sink, also writing what the job does to the job's log: stage changes, epochs,
    fronts, exports, events."""

    def report_stage(self, progress: Progress) -> None:
        if progress.stage != self._stage:
            log.info("stage %s: %s", progress.stage, progress.to_json())
        super().report_stage(progress)

    def add_epoch(self, report: EpochReport) -> None:
        of = f"/{report.epochs}" if report.epochs else ""
        log.info(
            "training %s epoch %d%s%s%s",
            report.phase,
            report.epoch,
            of,
            f" (resumed from {report.resumed_from})" if report.resumed_from else "",
            f": {_numbers(report.metrics)}" if report.metrics else "",
        )
        super().add_epoch(report)

    def add_event(self, kind: str, message: str, data: Mapping[str, Any]) -> None:
        log.info("%s: %s", kind, message)
        super().add_event(kind, message, data)

    def set_pareto(self, device: str, genotypes: Sequence[str], hypervolume: float | None) -> None:
        hv = "" if hypervolume is None else f", hypervolume {hypervolume:.6g}"
        log.info("front on %s: %d subnets%s", device, len(genotypes), hv)
        super().set_pareto(device, genotypes, hypervolume)

    def add_artifact(self, artifact: ArtifactRecord) -> None:
        log.info(
            "stored %s of candidate %s (%d bytes)",
            artifact.kind,
            artifact.candidate_id,
            artifact.size_bytes,
        )
        super().add_artifact(artifact)


def runs_dir(settings: Settings) -> Path:
    return (settings.data_dir / "runs").resolve()


def resolve_inputs(db: Database, settings: Settings, job_id: uuid.UUID) -> tuple[JobInputs, int]:
    """The pipeline's inputs for a job, and the job's owner."""
    with db.transaction() as s:
        job = jobs.get_job(s, job_id)
        if job is None:
            raise LookupError(f"job {job_id} not found")
        spec = JobSpec.model_validate(job.spec)
        owner = job.owner_id
        run_dir = runs_dir(settings) / str(job_id)
        data = _data_ref(s, spec)
        devices = []
        for name in spec.devices:
            row = device_repo.get_device(s, name)
            if row is None:
                devices.append(DeviceInfo(name=name))
            else:
                # Every DeviceInfo field is a column of the devices table.
                devices.append(
                    DeviceInfo(**{f.name: getattr(row, f.name) for f in fields(DeviceInfo)})
                )
        checkpoint: Path | None = None
        if spec.supernet_from is not None:
            source = jobs.get_job(s, spec.supernet_from)
            if source is None:
                raise LookupError(f"supernet_from: job {spec.supernet_from} not found")
            checkpoint = _supernet_of(settings, source.id, source.checkpoint_uri)
    inputs = JobInputs(
        job_id=str(job_id),
        spec=spec,
        data=data,
        run_dir=run_dir,
        devices=tuple(devices),
        cache_dir=(settings.data_dir / "latency").resolve(),
        supernet_checkpoint=checkpoint,
    )
    return inputs, owner


def _supernet_of(settings: Settings, job_id: uuid.UUID, uri: str | None) -> Path:
    path = Path(uri) if uri else runs_dir(settings) / str(job_id) / "train" / "final.pt"
    if not path.is_file():
        raise FileNotFoundError(f"supernet_from: job {job_id} has no trained supernet ({path})")
    return path


def _data_ref(s: Any, spec: JobSpec) -> DataRef:
    ref = spec.dataset
    if ref.name is not None:
        return DataRef(ref.name, spec.seed, dict(ref.options))
    assert ref.id is not None
    ds = dataset_repo.get_dataset(s, ref.id)
    if ds is None:
        raise LookupError(f"dataset {ref.id} not found")
    art = arts.get_artifact(s, ds.artifact_id)
    if art is None or not art.uri:
        raise LookupError(f"dataset {ref.id} has no stored file")
    # Its on-disk store where it has one that fits the options, else the stored file itself
    # (an upload from before conversion): the format's reader takes it.
    return DataRef(
        ds.format, spec.seed, datasets.data_options(ds.format, ds.info or {}, art.uri, ref.options)
    )


def run_job(
    job_id: uuid.UUID | str, settings: Settings, worker_id: str, engine: Engine | None = None
) -> str:
    """Run a job this worker has claimed. Returns how it ended: succeeded, failed, cancelled,
    or ``lost`` (the claim was taken away: the job is someone else's now)."""
    jid = uuid.UUID(str(job_id))
    db = Database(settings.database_url)
    try:
        with job_log(settings, jid):
            log.info("job %s: claimed by worker %s", jid, worker_id)
            outcome = _run(db, settings, jid, worker_id, engine)
            log.info("job %s: %s", jid, outcome)
            return outcome
    finally:
        db.dispose()


def _run(
    db: Database, settings: Settings, jid: uuid.UUID, worker_id: str, engine: Engine | None
) -> str:
    if engine is None:
        from workers.runtime.ray_engine import RayEngine

        engine = RayEngine(settings=settings)
    try:
        inputs, owner = resolve_inputs(db, settings, jid)
        spec = inputs.spec
        log.info(
            "space %s, dataset %s, %s search of %d, devices %s",
            spec.space.id,
            spec.dataset.name or spec.dataset.id,
            spec.search.algorithm,
            spec.search.budget,
            ", ".join(spec.devices),
        )
        sink = LoggedSink(db, jid, owner, worker_id)
        result = run_pipeline(inputs, sink, engine)
    except JobLost:
        log.warning("job %s: claim lost; stopping without touching it", jid)
        return "lost"
    except JobCancelled:
        return _finish(db, jid, worker_id, JobStatus.cancelled, message="cancelled on request")
    except Exception as exc:
        log.exception("job %s failed", jid)
        error = f"{type(exc).__name__}: {exc}"
        detail = traceback.format_exc(limit=8)
        return _finish(db, jid, worker_id, JobStatus.failed, error=error, message=detail[-4000:])
    with db.transaction() as s:
        jobs.record_event(
            s,
            jid,
            "result",
            message="pipeline finished",
            data={
                "pareto": result.pareto,
                "hypervolume": result.hypervolume,
                "artifacts": result.artifacts,
                "timings": result.timings,
            },
        )
    message = result.outcome.get("message") or "job succeeded"
    return _finish(db, jid, worker_id, JobStatus.succeeded, message=message, outcome=result.outcome)


def _finish(
    db: Database,
    jid: uuid.UUID,
    worker_id: str,
    status: JobStatus,
    *,
    error: str | None = None,
    message: str = "",
    outcome: dict[str, Any] | None = None,
) -> str:
    with db.transaction() as s:
        done = jobs.finish_job(
            s, jid, worker_id, status, error=error, message=message, outcome=outcome or None
        )
    return status.value if done is not None else "lost"


def run_export(artifact_id: int, settings: Settings, engine: Engine | None = None) -> bool:
    """Make one requested export (claimed by this worker). True when it is ready."""
    if engine is None:
        from workers.runtime.ray_engine import RayEngine

        engine = RayEngine()
    db = Database(settings.database_url)
    try:
        with db.transaction() as s:
            art = arts.get_artifact(s, artifact_id)
            if art is None or art.candidate_id is None or art.job_id is None:
                return False
            cand = get_candidate(s, art.candidate_id)
            if cand is None:
                raise LookupError(f"candidate {art.candidate_id} not found")
            kind, arch, genotype, job_id = art.kind, dict(cand.arch), cand.genotype, art.job_id
            meta = export_metadata(to_record(cand), cand.device)
        try:
            inputs, _ = resolve_inputs(db, settings, job_id)
            fmt = exports.format_of_kind(kind)
            dest = inputs.export_dir / export_name(genotype, fmt)
            res = engine.call(
                write_export,
                inputs.checkpoint(),
                inputs.data,
                arch,
                fmt,
                dest,
                inputs.seed,
                meta,
                gpus=inputs.gpus,
            )
        except Exception as exc:
            log.exception("export %s failed", artifact_id)
            with db.transaction() as s:
                arts.mark_artifact_failed(s, artifact_id, f"{type(exc).__name__}: {exc}")
            return False
        with db.transaction() as s:
            arts.mark_artifact_ready(
                s, artifact_id, uri=str(res.path), sha256=res.sha256, size_bytes=res.size_bytes
            )
        return True
    finally:
        db.dispose()
