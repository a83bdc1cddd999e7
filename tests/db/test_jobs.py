"""The job state machine: guarded transitions, claims, heartbeats, cancel, reaper."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from nas_service.db import Database, Job, JobEvent
from nas_service.db.jobs import (
    claim_next_job,
    count_active_jobs,
    finish_job,
    get_job,
    heartbeat,
    list_events,
    list_jobs,
    reap_stale,
    reap_stalled,
    request_cancel,
    requeue_job,
    retry_job,
    transition,
)
from nas_service.db.types import utcnow
from nas_service.domain import JobStatus
from tests.db.helpers import make_jobs


def _status(db: Database, job_id: uuid.UUID) -> str:
    with db.transaction() as s:
        job = get_job(s, job_id)
        assert job is not None
        return job.status


def _events(db: Database, job_id: uuid.UUID) -> list[tuple[str, str | None, str | None]]:
    with db.transaction() as s:
        return [(e.kind, e.from_status, e.to_status) for e in list_events(s, job_id)]


def test_happy_path_records_every_transition(db: Database) -> None:
    _, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        job = claim_next_job(s, "w1")
        assert job is not None and job.id == jid
        assert (job.status, job.worker_id, job.attempt) == ("running", "w1", 1)
        assert job.started_at is not None and job.heartbeat_at is not None
    with db.transaction() as s:
        done = finish_job(s, jid, "w1", JobStatus.succeeded)
        assert done is not None and done.finished_at is not None
    assert _status(db, jid) == "succeeded"
    assert _events(db, jid) == [
        ("created", None, "queued"),
        ("claimed", "queued", "running"),
        ("transition", "running", "succeeded"),
    ]


@pytest.mark.parametrize("end", [JobStatus.failed, JobStatus.cancelled])
def test_running_can_fail_or_be_cancelled(db: Database, end: JobStatus) -> None:
    _, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        assert claim_next_job(s, "w1") is not None
        job = finish_job(s, jid, "w1", end, error="boom" if end == "failed" else None)
        assert job is not None and job.status == end.value
        assert job.error == ("boom" if end == "failed" else None)


def test_guard_refuses_wrong_state_and_wrong_worker(db: Database) -> None:
    _, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        # queued -> succeeded is not a transition: no row matches, nothing is recorded.
        assert finish_job(s, jid, "w1", JobStatus.succeeded) is None
        assert claim_next_job(s, "w1") is not None
        assert finish_job(s, jid, "intruder", JobStatus.succeeded) is None
    assert _status(db, jid) == "running"
    assert [k for k, _, _ in _events(db, jid)] == ["created", "claimed"]
    with db.transaction() as s, pytest.raises(ValueError, match="not in the state machine"):
        transition(s, jid, JobStatus.succeeded, from_=[JobStatus.queued])


def test_requeue_then_retry_paths(db: Database) -> None:
    _, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        assert claim_next_job(s, "w1") is not None
        job = requeue_job(s, jid, "worker lost")
        assert job is not None and job.status == "queued" and job.worker_id is None
        # Retry applies to failed/cancelled only.
        assert retry_job(s, jid) is None
        again = claim_next_job(s, "w2")
        assert again is not None and again.attempt == 2
        assert finish_job(s, jid, "w2", JobStatus.failed, error="x") is not None
        retried = retry_job(s, jid)
        assert retried is not None and retried.status == "queued"
        assert retried.finished_at is None and retried.cancel_requested is False
    kinds = [(k, a, b) for k, a, b in _events(db, jid)]
    assert kinds[-1] == ("retry", "failed", "queued")
    assert ("requeued", "running", "queued") in kinds


def test_cancel_queued_is_immediate_running_sets_flag(db: Database) -> None:
    owner, (a, b) = make_jobs(db, 2)
    with db.transaction() as s:
        assert claim_next_job(s, "w1") is not None  # claims a (oldest first)
    with db.transaction() as s:
        queued = request_cancel(s, b, owner)
        assert queued is not None and queued.status == "cancelled"
        running = request_cancel(s, a, owner)
        assert running is not None and running.status == "running" and running.cancel_requested
        assert heartbeat(s, a, "w1", stage="training", progress={"epoch": 1}) is True
        # Another owner cannot cancel; a finished job cannot be cancelled.
        assert request_cancel(s, a, owner + 999) is None
        assert request_cancel(s, b, owner) is None
        assert finish_job(s, a, "w1", JobStatus.cancelled) is not None
        assert retry_job(s, b) is not None
    assert _status(db, b) == "queued"


def test_heartbeat_updates_and_reports_lost_claim(db: Database) -> None:
    _, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        before = claim_next_job(s, "w1")
        assert before is not None and before.heartbeat_at is not None
        first_beat = before.heartbeat_at
    with db.transaction() as s:
        assert heartbeat(s, jid, "w1", stage="searching", progress={"generation": 3}) is False
        assert heartbeat(s, jid, "other") is None
    with db.transaction() as s:
        job = get_job(s, jid)
        assert job is not None
        assert (job.stage, job.progress) == ("searching", {"generation": 3})
        assert job.heartbeat_at is not None and job.heartbeat_at >= first_beat


def test_reaper_requeues_cancels_and_gives_up(db: Database) -> None:
    _, ids = make_jobs(db, 4)
    with db.transaction() as s:
        for i in range(4):
            assert claim_next_job(s, f"w{i}") is not None
        assert request_cancel(s, ids[1]) is not None
    with db.transaction() as s:
        # Job 2 has already been tried 3 times.
        transition(s, ids[2], JobStatus.queued, from_=[JobStatus.running])
        assert claim_next_job(s, "w2") is not None
        transition(s, ids[2], JobStatus.queued, from_=[JobStatus.running])
        assert claim_next_job(s, "w2") is not None
        assert heartbeat(s, ids[3], "w3") is False  # fresh
    later = utcnow() + timedelta(seconds=30)
    with db.transaction() as s:
        # Job 3's heartbeat is still fresh relative to a short window from now.
        assert reap_stale(s, timedelta(seconds=60), now=later) == []
        requeued = reap_stale(s, timedelta(seconds=10), max_attempts=3, now=later)
    assert sorted(requeued) == sorted([ids[0], ids[3]])
    assert [_status(db, j) for j in ids] == ["queued", "cancelled", "failed", "queued"]
    with db.transaction() as s:
        job = get_job(s, ids[2])
        assert job is not None and job.error == "worker lost 3 times; giving up"
        kinds = s.scalars(select(JobEvent.kind).where(JobEvent.job_id == ids[0])).all()
        assert kinds[-1] == "requeued"


def test_concurrent_claims_take_each_job_exactly_once(db: Database) -> None:
    _, ids = make_jobs(db, 12)
    claimed: dict[str, list[uuid.UUID]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def dispatcher(name: str) -> None:
        mine: list[uuid.UUID] = []
        try:
            barrier.wait()
            while True:
                # Each thread has its own session, hence its own pooled connection.
                with db.transaction() as s:
                    job = claim_next_job(s, name)
                    if job is None:
                        break
                    mine.append(job.id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        claimed[name] = mine

    threads = [threading.Thread(target=dispatcher, args=(f"d{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    everything = [j for lst in claimed.values() for j in lst]
    assert sorted(everything) == sorted(ids)
    assert len(set(everything)) == len(everything) == 12
    with db.transaction() as s:
        for name, lst in claimed.items():
            for jid in lst:
                job = get_job(s, jid)
                assert job is not None and job.worker_id == name and job.attempt == 1


def test_list_jobs_keyset_and_counts(db: Database) -> None:
    owner, ids = make_jobs(db, 5)
    other, _ = make_jobs(db, 2)
    with db.transaction() as s:
        page1 = list_jobs(s, owner, limit=2)
        last = page1[-1]
        page2 = list_jobs(s, owner, limit=2, before=(last.created_at, last.id))
        last2 = page2[-1]
        page3 = list_jobs(s, owner, limit=2, before=(last2.created_at, last2.id))
        assert len(page3) == 1
        got = [j.id for j in page1 + page2 + page3]
        assert sorted(got) == sorted(ids) and len(set(got)) == 5
        assert count_active_jobs(s, owner) == 5
        assert claim_next_job(s, "w") is not None
        assert [j.id for j in list_jobs(s, owner, statuses=["running"])] == [ids[0]]
        assert get_job(s, ids[0], other) is None


def test_reaper_uses_the_database_clock(db: Database) -> None:
    _, (fresh, stale) = make_jobs(db, 2)
    with db.transaction() as s:
        assert claim_next_job(s, "w1") is not None
        assert claim_next_job(s, "w2") is not None
        # Backdate one heartbeat by 5 minutes on the server's own clock.
        s.execute(
            update(Job)
            .where(Job.id == stale)
            .values(heartbeat_at=func.now() - timedelta(minutes=5))
        )
    with db.transaction() as s:
        assert reap_stale(s, timedelta(minutes=1)) == [stale]
        assert reap_stale(s, timedelta(minutes=1)) == []
    assert (_status(db, fresh), _status(db, stale)) == ("running", "queued")
    with db.transaction() as s:
        # The reaped worker's late heartbeat tells it to stop; the new claim is attempt 2.
        assert heartbeat(s, stale, "w2") is None
        again = claim_next_job(s, "w3")
        assert again is not None and again.id == stale and again.attempt == 2


def test_a_finished_job_keeps_its_outcome_and_a_retry_clears_it(db: Database) -> None:
    """The outcome a runner reports (here: no feasible subnet) is stored with the terminal
    transition and in its event; a later retry starts without it."""
    _, (jid,) = make_jobs(db, 1)
    outcome = {
        "code": "no_feasible_subnet",
        "message": "no feasible subnet on cpu: the smallest network measures 7.2 ms",
        "devices": {"cpu": {"code": "no_feasible_subnet", "front": 0, "closest": []}},
    }
    with db.transaction() as s:
        assert claim_next_job(s, "w1") is not None
    with db.transaction() as s:
        assert finish_job(s, jid, "w1", JobStatus.failed, outcome=outcome) is not None
    with db.transaction() as s:
        job = get_job(s, jid)
        assert job is not None and job.outcome == outcome
        last = list_events(s, jid)[-1]
        assert (last.to_status, last.data) == ("failed", {"outcome": outcome})
    with db.transaction() as s:
        assert retry_job(s, jid) is not None
    with db.transaction() as s:
        job = get_job(s, jid)
        assert job is not None and job.status == "queued" and job.outcome is None


def test_a_requeue_never_leaves_a_queued_job_with_a_cancel_request(db: Database) -> None:
    """A running job whose cancel was requested is not put back in the queue when its worker
    goes (a dispatcher shutdown or the reaper): it ends cancelled. The table refuses the
    combination outright."""
    from sqlalchemy.exc import IntegrityError

    _, (jid, other) = make_jobs(db, 2)
    with db.transaction() as s:
        assert claim_next_job(s, "w1") is not None
        assert request_cancel(s, jid) is not None
    with db.transaction() as s:
        job = requeue_job(s, jid, "dispatcher w1 shut down", "w1")
        assert job is not None and (job.status, job.cancel_requested) == ("cancelled", False)
    assert _events(db, jid)[-1] == ("requeued", "running", "cancelled")
    with pytest.raises(IntegrityError), db.transaction() as s:
        s.execute(update(Job).where(Job.id == other).values(cancel_requested=True))


def test_a_job_whose_runner_reports_nothing_is_failed_with_the_reason(db: Database) -> None:
    """The dispatcher's plain heartbeat keeps a job alive but is not progress: a job whose
    runner stopped reporting is failed by reap_stalled, and says why; a job that reports
    progress is left alone."""
    _, (stuck, moving) = make_jobs(db, 2)
    with db.transaction() as s:
        assert claim_next_job(s, "w1") is not None
        assert claim_next_job(s, "w1") is not None
        heartbeat(s, stuck, "w1", stage="predicting", progress={"device": "phone"})
    with db.transaction() as s:
        # Backdate the stuck job's last progress; the worker still beats for both.
        s.execute(
            update(Job).where(Job.id == stuck).values(progress_at=utcnow() - timedelta(hours=2))
        )
        assert heartbeat(s, stuck, "w1") is False
        heartbeat(s, moving, "w1", stage="training", progress={"epoch": 3})
    with db.transaction() as s:
        assert reap_stale(s, timedelta(seconds=60)) == []  # heartbeats are fresh
        assert reap_stalled(s, timedelta(hours=1)) == [stuck]
    with db.transaction() as s:
        job = get_job(s, stuck)
        assert job is not None and job.status == "failed"
        assert "no progress for over 3600 s in stage 'predicting'" in (job.error or "")
        assert "resource" in (job.error or "")
        assert _status(db, moving) == "running"
    assert _events(db, stuck)[-1] == ("stalled", "running", "failed")
