"""The dispatcher against the real store and a real local Ray: claims, exclusivity between
dispatchers, the reaper, shutdown. The job body is a small function here (the pipeline has
its own tests), so these tests are about who runs what, and how often."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import ray
from sqlalchemy import update

from nas_service.db import Database, Job
from nas_service.db import jobs as jobs_repo
from nas_service.db.types import utcnow
from nas_service.domain import JobStatus
from nas_service.settings import Settings
from tests.workers.conftest_ray import (  # noqa: F401
    db,
    events,
    job_row,
    owner,
    ray_local,
    settings,
    submit,
    wait_for,
)
from workers.runtime.dispatcher import Dispatcher, DispatcherConfig

# Ray workers import this module's job functions by value (tests/ is not a package they know).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def quick_job(job_id: str, blob: dict[str, Any], worker_id: str) -> str:
    """Record that this worker ran the job, then finish it under the claim."""
    store = Database(blob["database_url"])
    jid = uuid.UUID(job_id)
    try:
        with store.transaction() as s:
            jobs_repo.record_event(s, jid, "test_run", data={"worker_id": worker_id})
        time.sleep(0.3)
        with store.transaction() as s:
            done = jobs_repo.finish_job(s, jid, worker_id, JobStatus.succeeded)
        return "succeeded" if done is not None else "lost"
    finally:
        store.dispose()


def endless_job(job_id: str, blob: dict[str, Any], worker_id: str) -> str:
    time.sleep(600)
    return "succeeded"


def _terminal(store: Database, ids: list[uuid.UUID]) -> bool:
    return all(job_row(store, j).status in ("succeeded", "failed", "cancelled") for j in ids)


def test_two_dispatchers_run_each_job_exactly_once(
    ray_local: None,  # noqa: F811
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    key = owner(db)
    ids = [submit(db, key) for _ in range(6)]
    config = DispatcherConfig(max_jobs=2, poll_s=0.05)
    dispatchers = [
        Dispatcher(settings, config=config, worker_id=f"d{i}", job_fn=quick_job) for i in (1, 2)
    ]
    threads = [
        threading.Thread(target=d.run, kwargs={"until": lambda: _terminal(db, ids)})
        for d in dispatchers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    runs: Counter[uuid.UUID] = Counter()
    claims: Counter[uuid.UUID] = Counter()
    runners: Counter[str] = Counter()
    for j in ids:
        assert job_row(db, j).status == "succeeded"
        for ev in events(db, j):
            if ev.kind == "test_run":
                runs[j] += 1
                runners[ev.data["worker_id"]] += 1
            if ev.kind == "claimed":
                claims[j] += 1
    assert runs == Counter(dict.fromkeys(ids, 1))
    assert claims == Counter(dict.fromkeys(ids, 1))
    assert sum(runners.values()) == 6 and set(runners) <= {"d1", "d2"}
    # The job row names the worker that ran it.
    for j in ids:
        ran = next(e.data["worker_id"] for e in events(db, j) if e.kind == "test_run")
        assert job_row(db, j).worker_id == ran


def test_reaper_requeues_a_stale_job_and_another_dispatcher_finishes_it(
    ray_local: None,  # noqa: F811
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    key = owner(db)
    jid = submit(db, key)
    with db.transaction() as s:
        assert jobs_repo.claim_next_job(s, "dead-worker") is not None
        # The dead worker's last heartbeat is older than stale_after.
        old = utcnow() - timedelta(seconds=settings.stale_after_s + 5)
        s.execute(update(Job).where(Job.id == jid).values(heartbeat_at=old))
    d = Dispatcher(
        settings, config=DispatcherConfig(poll_s=0.05), worker_id="alive", job_fn=quick_job
    )
    d.run(until=lambda: _terminal(db, [jid]))

    row = job_row(db, jid)
    assert row.status == "succeeded" and row.worker_id == "alive" and row.attempt == 2
    kinds = [(e.kind, e.to_status) for e in events(db, jid)]
    assert kinds[:4] == [
        ("created", "queued"),
        ("claimed", "running"),  # the dead worker
        ("requeued", "queued"),  # the reaper
        ("claimed", "running"),  # the live dispatcher
    ]
    assert [k for k, _ in kinds].count("test_run") == 1


def test_fresh_heartbeats_keep_a_running_job_from_being_reaped(
    ray_local: None,  # noqa: F811
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    short = settings.model_copy(update={"stale_after_s": 1.5, "heartbeat_interval_s": 0.3})
    jid = submit(db, owner(db))
    d = Dispatcher(
        short,
        config=DispatcherConfig(poll_s=0.05, reap_every_s=0.2),
        worker_id="busy",
        job_fn=endless_job,
    )
    thread = threading.Thread(target=d.run)
    thread.start()
    try:
        wait_for(lambda: job_row(db, jid).status == "running", 30, "the claim")
        time.sleep(4 * short.stale_after_s)  # several reaper rounds, heartbeats keep it alive
        assert job_row(db, jid).status == "running"
        assert [e.kind for e in events(db, jid)].count("requeued") == 0
    finally:
        d.stop()
        thread.join(timeout=60)
    # A clean stop gives the job back at once instead of waiting for the reaper.
    row = job_row(db, jid)
    assert row.status == "queued" and row.worker_id is None
    assert [e.kind for e in events(db, jid)][-1] == "requeued"


def winding_down_job(job_id: str, blob: dict[str, Any], worker_id: str) -> str:
    """Record the end itself, then take a while to return (as a Tune trial shutting down)."""
    store = Database(blob["database_url"])
    try:
        with store.transaction() as s:
            jobs_repo.finish_job(s, uuid.UUID(job_id), worker_id, JobStatus.cancelled)
    finally:
        store.dispose()
    time.sleep(2.0)
    return "cancelled"


def fast_dispatcher(store: Database, base: Settings, job_fn: Any) -> tuple[str, Dispatcher]:
    """A submitted job and a dispatcher polling every 50 ms with 100 ms heartbeats."""
    fast = base.model_copy(update={"heartbeat_interval_s": 0.1})
    jid = submit(store, owner(store))
    return jid, Dispatcher(fast, config=DispatcherConfig(poll_s=0.05), worker_id="w", job_fn=job_fn)


def test_a_task_winding_down_after_ending_its_job_is_collected_not_killed(
    ray_local: None,  # noqa: F811
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    jid, d = fast_dispatcher(db, settings, winding_down_job)
    thread = threading.Thread(target=d.run, kwargs={"until": lambda: jid in d.outcomes})
    thread.start()
    try:
        # Heartbeats land while the task winds down (the job is no longer 'running'): the
        # dispatcher must wait for the task and record its outcome, not kill it.
        wait_for(lambda: jid in d.outcomes, 30, "the outcome")
        assert d.outcomes[jid] == "cancelled"
    finally:
        d.stop()
        thread.join(timeout=60)


def test_a_task_whose_job_was_taken_away_is_stopped_and_recorded_lost(
    ray_local: None,  # noqa: F811
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    jid, d = fast_dispatcher(db, settings, endless_job)
    thread = threading.Thread(target=d.run)
    thread.start()
    try:
        wait_for(lambda: jid in d.running, 30, "the claim")
        first = d.running[jid].ref
        with db.transaction() as s:  # as a reaper elsewhere would
            assert jobs_repo.requeue_job(s, jid, "worker presumed lost") is not None
        wait_for(lambda: d.outcomes.get(jid) == "lost", 30, "the task to be stopped")
        # The old task is gone; the re-queued job may be claimed again, under a new task.
        current = d.running.get(jid)
        assert current is None or current.ref != first
    finally:
        d.stop()
        thread.join(timeout=60)


def job_waiting_for_a_missing_resource(job_id: str, blob: dict[str, Any], worker_id: str) -> str:
    """Report one stage, then wait on a Ray task that needs a resource no node has (as a latency
    task for a device no node is wired to)."""
    store = Database(blob["database_url"])
    try:
        with store.transaction() as s:
            jobs_repo.heartbeat(
                s, uuid.UUID(job_id), worker_id, stage="predicting", progress={"device": "phone"}
            )
    finally:
        store.dispose()

    @ray.remote(num_cpus=0, resources={"no_node_has_this": 1})
    def never_scheduled() -> int:
        return 1

    return str(ray.get(never_scheduled.remote()))


def test_a_hung_runner_is_reaped_and_says_why(
    ray_local: None,  # noqa: F811
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    """The dispatcher beats for the job all along, so only the runner's silence shows: once the
    runner has reported and then hangs (a task waiting for a resource no node has), the job is
    failed after ``stall_after_s`` without progress, with the reason, and its task is stopped."""
    jid, d = fast_dispatcher(db, settings, job_waiting_for_a_missing_resource)
    thread = threading.Thread(target=d.run, kwargs={"until": lambda: jid in d.outcomes})
    thread.start()
    try:
        # A task may take seconds to start on a loaded machine: wait for the runner's report,
        # then give the reaper a short stall limit (it reads the setting every round).
        wait_for(lambda: job_row(db, jid).stage == "predicting", 60, "the runner's report")
        d.settings = d.settings.model_copy(update={"stall_after_s": 2.0})
        took = wait_for(lambda: job_row(db, jid).status == "failed", 60, "the stall to be seen")
        assert took < 30
        row = job_row(db, jid)
        assert "no progress for over 2 s in stage 'predicting'" in row.error
        assert "ray_resource" in row.error
        assert [e.kind for e in events(db, jid)][-1] == "stalled"
        wait_for(lambda: jid in d.outcomes, 30, "the task to be stopped")
        assert jid not in d.running
    finally:
        d.stop()
        thread.join(timeout=60)
    assert job_row(db, jid).status == "failed"
