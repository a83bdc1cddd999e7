"""The embedded SQLite store (quick start): same repository functions, one writer at a time."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from nas_service.db import Database
from nas_service.db.jobs import claim_next_job, create_job, finish_job, get_job, heartbeat
from nas_service.db.keys import create_key
from nas_service.db.migrate import upgrade
from nas_service.db.results import CandidateIn, upsert_candidates
from nas_service.domain import CandidateSource, JobStatus
from tests.db.helpers import SPEC


def test_sqlite_concurrent_claims_and_round_trip(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nas.sqlite'}")
    upgrade(db.engine)
    with db.transaction() as s:
        owner, _ = create_key(s, "local")
        ids = [create_job(s, owner.id, SPEC, space_id="mlp").id for _ in range(8)]
    claimed: list[tuple[str, uuid.UUID]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(3)

    def dispatcher(name: str) -> None:
        barrier.wait()
        while True:
            with db.transaction() as s:
                job = claim_next_job(s, name)
            if job is None:
                return
            with lock:
                claimed.append((name, job.id))

    threads = [threading.Thread(target=dispatcher, args=(f"d{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(j for _, j in claimed) == sorted(ids)
    name, jid = claimed[0]
    with db.transaction() as s:
        assert heartbeat(s, jid, name, stage="searching") is False
        rows = [CandidateIn(arch={"d": 1}, genotype=(1,), accuracy=0.5)]
        first = upsert_candidates(s, jid, rows)
        measured = [
            CandidateIn(arch={"d": 1}, genotype=(1,), accuracy=0.6, source=CandidateSource.measured)
        ]
        assert upsert_candidates(s, jid, measured) == first
        done = finish_job(s, jid, name, JobStatus.succeeded)
        assert done is not None and done.finished_at is not None
    with db.transaction() as s:
        job = get_job(s, jid)
        assert job is not None and job.status == "succeeded"
        # Timestamps come back timezone-aware (UTC) from SQLite too.
        assert job.finished_at is not None and job.finished_at.utcoffset() is not None
        assert job.started_at is not None and job.finished_at >= job.started_at
    db.dispose()


def test_sqlite_deletes_and_store_figures(tmp_path: Path) -> None:
    """Deletion and the /metrics figures on the quick-start store: the JSON lookup of a
    dataset's jobs, the cascades (foreign keys are on) and the heartbeat ages."""
    from sqlalchemy import func, select

    from nas_service.db import Candidate, JobEvent
    from nas_service.db import artifacts as arts
    from nas_service.db import datasets as dataset_repo
    from nas_service.db import jobs as repo
    from nas_service.domain import ArtifactKind, ArtifactStatus

    db = Database(f"sqlite:///{tmp_path / 'nas.sqlite'}")
    upgrade(db.engine)
    with db.transaction() as s:
        owner, _ = create_key(s, "local")
        art = arts.create_artifact(s, owner.id, ArtifactKind.dataset, status=ArtifactStatus.ready)
        ds = dataset_repo.create_dataset(s, owner.id, "d", "npz", art.id, {})
        job = create_job(s, owner.id, {"dataset": {"id": str(ds.id)}}, space_id="mlp")
        upsert_candidates(s, job.id, [CandidateIn(arch={}, genotype=(1,))])
        create_job(s, owner.id, SPEC, space_id="mlp")
    with db.transaction() as s:
        assert repo.jobs_using_dataset(s, owner.id, ds.id) == [job.id]
        assert claim_next_job(s, "w") is not None
        assert repo.count_by_status(s)["running"] == 1
        ((worker, n, at),) = repo.worker_heartbeats(s)
        assert (worker, n) == ("w", 1) and at is not None and at.tzinfo is not None
        assert 0 <= (repo.db_now(s) - at).total_seconds() < 60
        assert finish_job(s, job.id, "w", JobStatus.cancelled) is not None
        assert repo.lock_job(s, job.id, owner.id) is not None
        assert repo.delete_job(s, job.id) is True
        assert s.scalar(select(func.count()).select_from(Candidate)) == 0
        events = select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job.id)
        assert s.scalar(events) == 0
        assert repo.jobs_using_dataset(s, owner.id, ds.id) == []
        assert dataset_repo.delete_dataset(s, ds.id) and arts.delete_artifact(s, art.id)
    db.dispose()
