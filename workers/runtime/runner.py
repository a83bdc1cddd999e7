"""``run_job``: load a claimed job from the store, run its pipeline, record how it ended.

The runner holds the dispatcher's claim (``worker_id``): every terminal transition is guarded
by it, so a job that was reaped and claimed elsewhere in the meantime is never touched.
Also ``run_export``: produce one export a user asked for (any candidate, any format).
"""

from __future__ import annotations

import logging
import traceback
import uuid
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
from nas_service.settings import Settings
from workers.pipeline import DataRef, DeviceInfo, Engine, JobCancelled, JobInputs, run_pipeline
from workers.pipeline.export import export_metadata, export_name
from workers.pipeline.work.export import write_export
from workers.runtime.db_sink import DbSink, JobLost, to_record

log = logging.getLogger(__name__)


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
    # The stored upload itself: each format's reader takes its file (an image zip included).
    return DataRef(
        ds.format, spec.seed, {**dict(ref.options), datasets.file_option(ds.format): art.uri}
    )


def run_job(
    job_id: uuid.UUID | str, settings: Settings, worker_id: str, engine: Engine | None = None
) -> str:
    """Run a job this worker has claimed. Returns how it ended: succeeded, failed, cancelled,
    or ``lost`` (the claim was taken away: the job is someone else's now)."""
    jid = uuid.UUID(str(job_id))
    db = Database(settings.database_url)
    try:
        return _run(db, settings, jid, worker_id, engine)
    finally:
        db.dispose()


def _run(
    db: Database, settings: Settings, jid: uuid.UUID, worker_id: str, engine: Engine | None
) -> str:
    if engine is None:
        from workers.runtime.ray_engine import RayEngine

        engine = RayEngine()
    try:
        inputs, owner = resolve_inputs(db, settings, jid)
        sink = DbSink(db, jid, owner, worker_id)
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
                write_export, inputs.checkpoint(), inputs.data, arch, fmt, dest, inputs.seed, meta
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
