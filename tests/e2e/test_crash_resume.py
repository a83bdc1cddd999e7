"""Crash and resume with real processes: a dispatcher (and the API server) killed with SIGKILL
in the middle of a job. The next dispatcher's reaper puts the job back to ``queued``; it resumes
from its last training checkpoint or replays its stored candidates, and finishes with no
duplicate candidates and nothing stored before the crash lost."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nas_service.db import Database, results
from nas_service.db import jobs as jobs_repo
from tests.e2e.conftest import free_port
from tests.pg import db, new_key  # noqa: F401
from tests.workers.conftest_ray import TINY_SPEC, events, job_row, make_spec, submit, wait_for

pytestmark = pytest.mark.slow

STALE_AFTER_S = 3.0


def session_pids(sid: int) -> list[int]:
    """Processes in session ``sid`` (what a started service left behind, Ray's included)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:
            out.append(int(p.name))
    return out


class Services:
    """Starts the dispatcher and the API as child processes, each in its own session, and
    makes sure nothing they started outlives the test."""

    def __init__(self, db_url: str, data_dir: Path, logs: Path):
        self.env = {
            **os.environ,
            "NAS_DATABASE_URL": db_url,
            "NAS_DATA_DIR": str(data_dir),
            "NAS_HEARTBEAT_INTERVAL_S": "0.5",
            "NAS_STALE_AFTER_S": str(STALE_AFTER_S),
            "NAS_EXPORT_RETRY_AFTER_S": "1",
        }
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, *argv], env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def dispatcher(self) -> subprocess.Popen[bytes]:
        return self._start("dispatcher", ["-m", "workers.runtime.dispatcher", "--num-cpus", "2"])

    def api(self, port: int) -> subprocess.Popen[bytes]:
        proc = self._start("api", ["-m", "nas_service.api", "--port", str(port)])

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the API server")
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process only, as a crash would."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            # Ray helper processes that a killed driver leaves behind.
            for pid in session_pids(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def services(db: Database, tmp_path: Path) -> Iterator[Services]:  # noqa: F811
    svc = Services(db.url, tmp_path / "data", tmp_path)
    try:
        yield svc
    finally:
        svc.cleanup()


def _metrics(store: Database, jid: uuid.UUID) -> list[Any]:
    with store.transaction() as s:
        return results.list_train_metrics(s, jid, limit=10_000)


def _candidates(store: Database, jid: uuid.UUID) -> list[Any]:
    with store.transaction() as s:
        return results.candidates_for_replay(s, jid)


def _schedule(training: dict[str, Any]) -> list[tuple[str, int]]:
    """Every (phase, epoch) the job's training config runs, in order."""
    from search_spaces import get_space
    from workers.data import space_options_for
    from workers.pipeline import work
    from workers.pipeline.job import DataRef

    data = work.load_data(DataRef("digits", TINY_SPEC["seed"]))
    opts = {**space_options_for("mlp", data), **TINY_SPEC["space"]["options"]}
    cfg = work.train_config(get_space("mlp", **opts), data, training)
    return [(p.name, e) for p in cfg.phases for e in range(1, p.epochs + 1)]


def _assert_no_duplicates(store: Database, jid: uuid.UUID, budget: int) -> list[Any]:
    rows = _candidates(store, jid)
    keys = [(c.genotype, c.device) for c in rows]
    assert len(keys) == len(set(keys)) == budget
    return rows


def test_dispatcher_killed_during_training_resumes_from_its_last_checkpoint(
    db: Database,  # noqa: F811
    services: Services,
) -> None:
    t_start = time.monotonic()
    training = {"preset": "tiny", "epochs_scale": 2.0, "batch_size": 64}
    jid = submit(db, new_key(db, "crash-1")[0], make_spec(training=training))
    first = services.dispatcher()
    wait_for(lambda: len(_metrics(db, jid)) >= 3, 240, "three training epochs")
    services.kill(first)
    # The job's Ray processes share the killed driver's fate within a second or two; only
    # then is the log of the first attempt complete.
    time.sleep(STALE_AFTER_S)
    killed_at = len(_metrics(db, jid))
    assert job_row(db, jid).status == "running"  # nobody has noticed yet

    second = services.dispatcher()
    wait_for(lambda: job_row(db, jid).status in ("succeeded", "failed"), 400, "the resumed job")
    # SIGTERM is a clean stop: the dispatcher exits by itself, with status 0.
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0
    row = job_row(db, jid)
    assert row.status == "succeeded", row.error
    assert row.attempt == 2
    kinds = [(e.kind, e.to_status) for e in events(db, jid)]
    assert ("requeued", "queued") in kinds
    assert kinds.index(("requeued", "queued")) < max(
        i for i, k in enumerate(kinds) if k == ("claimed", "running")
    )

    resumes = [e for e in events(db, jid) if e.kind == "training_resumed"]
    assert len(resumes) == 1, "exactly one resume, by the second attempt"
    name = resumes[0].data["checkpoint"]  # p<phase>-e<epoch>.pt
    phase, epoch = (int(x) for x in name[1:-3].split("-e"))
    assert (phase, epoch) != (0, 0), f"restarted from scratch ({name})"
    assert resumes[0].data["epoch"] == epoch >= 1
    # Every epoch of the schedule logged exactly once: none lost to the kill, none repeated.
    epochs = [(m.phase, m.epoch) for m in _metrics(db, jid)]
    assert epochs == _schedule(training)
    # It resumed where the first attempt stopped (the kill may land between a checkpoint and
    # its log line, so the checkpoint may be one epoch ahead of the log).
    assert killed_at <= epochs.index((resumes[0].data["phase"], epoch)) + 1 <= killed_at + 1
    assert _assert_no_duplicates(db, jid, TINY_SPEC["search"]["budget"])
    print(f"\ncrash during training: {time.monotonic() - t_start:.1f}s (resumed from {name})")


def test_api_and_dispatcher_killed_during_search_resume_without_losing_candidates(
    db: Database,  # noqa: F811
    services: Services,
) -> None:
    t_start = time.monotonic()
    key = new_key(db, "crash-2")[1]
    port = free_port()
    api = services.api(port)
    dispatcher = services.dispatcher()
    budget = 24
    body = {
        **TINY_SPEC,
        "search": {**TINY_SPEC["search"], "budget": budget, "population": 3},
    }
    url = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{url}/jobs", json=body, headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    jid = uuid.UUID(r.json()["id"])

    def stored() -> int:
        return len(_candidates(db, jid))

    # Kill as soon as the first batch is stored: later batches still have to come.
    wait_for(lambda: stored() >= 3, 240, "the first search batch", every=0.05)
    services.kill(dispatcher)
    services.kill(api)
    before = {(c.id, c.genotype, c.device) for c in _candidates(db, jid)}
    trained_epochs = len(_metrics(db, jid))
    assert 3 <= len(before) < budget, "the kill did not land in the middle of the search"
    assert job_row(db, jid).status == "running"

    port = free_port()
    services.api(port)
    services.dispatcher()
    url = f"http://127.0.0.1:{port}/api/v1"

    def finished() -> bool:
        job = httpx.get(f"{url}/jobs/{jid}", headers=headers, timeout=30).json()
        return bool(job["status"] in ("succeeded", "failed"))

    wait_for(finished, 400, "the resumed job", every=0.5)
    job = httpx.get(f"{url}/jobs/{jid}", headers=headers, timeout=30).json()
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2

    rows = _assert_no_duplicates(db, jid, budget)
    after = {(c.id, c.genotype, c.device) for c in rows}
    assert before <= after, "candidates stored before the crash were lost or changed"
    assert len(_metrics(db, jid)) == trained_epochs, "training ran again after the crash"
    front = httpx.get(f"{url}/jobs/{jid}/pareto", headers=headers, timeout=30).json()["front"]
    assert front and all(c["source"] == "measured" for c in front)
    with db.transaction() as s:
        ev = jobs_repo.list_events(s, jid, limit=10_000)
    assert [e.kind for e in ev].count("requeued") == 1
    print(f"\ncrash during search: {time.monotonic() - t_start:.1f}s ({len(before)} kept)")
