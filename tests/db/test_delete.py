"""Deleting jobs and datasets in the store: no orphan rows, and no claim of a job being deleted."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from nas_service.db import Artifact, Candidate, Database, Dataset, Job, JobEvent, TrainMetric
from nas_service.db import artifacts as arts
from nas_service.db import datasets as dataset_repo
from nas_service.db import jobs as repo
from nas_service.db.results import CandidateIn, MetricRow, add_train_metrics, upsert_candidates
from nas_service.domain import ArtifactKind, ArtifactStatus, JobStatus
from tests.db.helpers import make_jobs


def _count(db: Database, model: type, **where: object) -> int:
    with db.transaction() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return int(s.scalar(q) or 0)


def test_delete_job_cascades_to_every_child_row(db: Database) -> None:
    owner, (jid, other) = make_jobs(db, 2)
    with db.transaction() as s:
        repo.record_event(s, jid, "note")
        add_train_metrics(s, jid, [MetricRow(seq=i, metrics={}) for i in range(3)])
        ids = upsert_candidates(s, jid, [CandidateIn(arch={}, genotype=(i,)) for i in range(4)])
        cand = s.get(Candidate, ids[0])
        assert cand is not None
        arts.request_export(s, cand, owner, "subnet_weights")
        arts.create_artifact(s, owner, ArtifactKind.checkpoint, job_id=jid)
        upsert_candidates(s, other, [CandidateIn(arch={}, genotype=(9,))])
        reuse = repo.create_job(s, owner, {}, space_id="mlp", supernet_from=jid)
    with db.transaction() as s:
        assert repo.jobs_reusing(s, jid) == [reuse.id]
        assert repo.delete_job(s, jid) is True
        assert repo.delete_job(s, jid) is False
    for model in (JobEvent, TrainMetric, Candidate, Artifact):
        assert _count(db, model, job_id=jid) == 0, model
    assert _count(db, Job, id=jid) == 0
    assert _count(db, Candidate, job_id=other) == 1  # other jobs keep theirs
    with db.transaction() as s:
        kept = repo.get_job(s, reuse.id)
        assert kept is not None and kept.supernet_from is None


def test_a_job_locked_for_deletion_is_never_claimed(db: Database) -> None:
    owner, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        assert repo.lock_job(s, jid, owner) is not None
        # Another dispatcher meanwhile: SKIP LOCKED passes over the row being deleted.
        with db.transaction() as s2:
            assert repo.claim_next_job(s2, "w") is None
        repo.delete_job(s, jid)
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is None
        assert repo.lock_job(s, jid, owner) is None


def test_lock_job_is_per_owner(db: Database) -> None:
    owner, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        assert repo.lock_job(s, jid, owner + 1000) is None
        assert repo.lock_job(s, uuid.uuid4(), owner) is None


def test_jobs_using_a_dataset_and_its_deletion(db: Database) -> None:
    owner, _ = make_jobs(db, 0)
    with db.transaction() as s:
        art = arts.create_artifact(
            s, owner, ArtifactKind.dataset, status=ArtifactStatus.ready, uri="/nowhere"
        )
        ds = dataset_repo.create_dataset(s, owner, "blobs", "npz", art.id, {})
        spec = {"dataset": {"id": str(ds.id)}}
        job = repo.create_job(s, owner, spec, space_id="mlp")
        repo.create_job(s, owner, {"dataset": {"name": "digits"}}, space_id="mlp")
    with db.transaction() as s:
        assert repo.jobs_using_dataset(s, owner, ds.id) == [job.id]
        assert repo.jobs_using_dataset(s, owner + 1000, ds.id) == []
        assert repo.jobs_using_dataset(s, owner, uuid.uuid4()) == []
        assert repo.delete_job(s, job.id)
        assert repo.jobs_using_dataset(s, owner, ds.id) == []
        assert dataset_repo.lock_dataset(s, ds.id, owner) is not None
        assert dataset_repo.delete_dataset(s, ds.id) is True
        assert arts.delete_artifact(s, art.id) is True
    assert _count(db, Dataset) == 0 and _count(db, Artifact) == 0


def test_store_figures_for_metrics(db: Database) -> None:
    _, ids = make_jobs(db, 3)
    with db.transaction() as s:
        assert repo.count_by_status(s) == {
            "queued": 3,
            "running": 0,
            "succeeded": 0,
            "failed": 0,
            "cancelled": 0,
        }
        assert repo.worker_heartbeats(s) == []
        claimed = repo.claim_next_job(s, "w1")
        assert claimed is not None and claimed.id == ids[0]
        assert repo.finish_job(s, ids[0], "w1", JobStatus.succeeded) is not None
        assert repo.claim_next_job(s, "w1") is not None
    with db.transaction() as s:
        counts = repo.count_by_status(s)
        assert (counts["queued"], counts["running"], counts["succeeded"]) == (1, 1, 1)
        ((worker, n, at),) = repo.worker_heartbeats(s)
        assert (worker, n) == ("w1", 1) and at is not None
        assert 0 <= (repo.db_now(s) - at).total_seconds() < 60
        oldest = repo.oldest_queued_at(s)
        assert oldest is not None
