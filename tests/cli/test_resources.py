"""A job's log and its deletion, and datasets (upload, list, delete), through the ``nas``
console script against the real server."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from nas_service.db import jobs as job_repo
from nas_service.domain import JobStatus
from tests.api.uploads import npz_bytes
from tests.cli.conftest import Nas

LOG = [
    "2026-01-01 10:00:00 INFO job started (attempt 1)",
    "2026-01-01 10:00:01 INFO training: phase 1 of 3",
    "2026-01-01 10:00:09 INFO cancelled",
]


def write_log(nas: Nas, job_id: str, lines: list[str]) -> Path:
    """The log as the runner writes it: <data_dir>/runs/<job>/job.log."""
    path = nas.data_dir / "runs" / job_id / "job.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_logs_of_a_job(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path)
    assert nas.ok("jobs", "logs", job_id).stdout == ""  # not started: an empty log
    assert nas.json("jobs", "logs", job_id) == []
    write_log(nas, job_id, LOG)
    nas.ok("cancel", job_id)
    assert nas.ok("jobs", "logs", job_id).stdout.splitlines() == LOG
    assert nas.json("jobs", "logs", job_id) == LOG
    # --follow on a job that has ended prints the whole log and returns
    assert (
        nas.ok("jobs", "logs", job_id, "--follow", "--interval", "0.2").stdout.splitlines() == LOG
    )
    missing = str(uuid.uuid4())
    done = nas.run("jobs", "logs", missing)
    assert (done.returncode, done.stderr.strip()) == (1, f"error: no job {missing} (HTTP 404)")


def test_delete_a_queued_job_and_its_files(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path)
    log = write_log(nas, job_id, LOG)
    done = nas.ok("jobs", "delete", job_id)
    assert (done.stdout, done.stderr.strip()) == ("", f"deleted job {job_id}")
    assert not log.parent.exists()
    gone = nas.run("jobs", "show", job_id)
    assert (gone.returncode, gone.stderr.strip()) == (1, f"error: no job {job_id} (HTTP 404)")
    again = nas.run("jobs", "delete", job_id, "--json")
    assert again.returncode == 1 and again.stdout == ""


def test_delete_of_a_running_job_waits_for_it_to_stop(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path)
    jid = uuid.UUID(job_id)
    with nas.db.transaction() as s:  # claimed by a (pretend) worker
        job_repo.transition(
            s, jid, JobStatus.running, from_=[JobStatus.queued], values={"worker_id": "w"}
        )

    def runner_stops() -> None:  # what the runner does once it sees the cancel request
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with nas.db.transaction() as s:
                row = job_repo.get_job(s, jid)
                if row is not None and row.cancel_requested:
                    job_repo.finish_job(s, jid, "w", JobStatus.cancelled)
                    return
            time.sleep(0.2)

    stopper = threading.Thread(target=runner_stops)
    stopper.start()
    done = nas.run("jobs", "delete", job_id, "--json")
    stopper.join()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("{") and '"deleted": true' in done.stdout
    assert nas.run("jobs", "show", job_id).returncode == 1


def test_delete_of_a_running_job_gives_up_after_its_timeout(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path)
    with nas.db.transaction() as s:
        job_repo.transition(
            s, uuid.UUID(job_id), JobStatus.running, from_=[JobStatus.queued],
            values={"worker_id": "w"},
        )  # fmt: skip
    done = nas.run("jobs", "delete", job_id, "--timeout", "0")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: job {job_id} is running: its cancel is requested")
    assert line.endswith("(HTTP 409)")
    assert nas.json("jobs", "show", job_id)["cancel_requested"] is True
    with nas.db.transaction() as s:
        job_repo.finish_job(s, uuid.UUID(job_id), "w", JobStatus.cancelled)


def test_datasets_upload_list_and_delete(nas: Nas, tmp_path: Path) -> None:
    assert nas.json("datasets") == []
    assert nas.ok("datasets", "list").stdout.strip() == "(no datasets)"
    npz = tmp_path / "tiny.npz"
    npz.write_bytes(npz_bytes(n=40, classes=4))
    up = nas.ok("datasets", "upload", str(npz), "--name", "tiny")
    ds_id = up.stdout.strip()
    uuid.UUID(ds_id)
    assert "uploaded dataset 'tiny' (npz)" in up.stderr
    listed = nas.json("datasets", "list")
    assert [(d["id"], d["name"], d["format"]) for d in listed] == [(ds_id, "tiny", "npz")]
    table = nas.ok("datasets").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "NAME", "FORMAT"] and table[1].startswith(ds_id)

    # In use by a job: refused (409) with the API's reason, exit 1; fine once the job is gone.
    job_file = tmp_path / "uses.yaml"
    job_file.write_text(
        f"space: {{id: mbv3, options: {{}}}}\ndataset: {{id: {ds_id}}}\n"
        "search: {algorithm: random, budget: 5, objectives: [{name: accuracy}]}\n"
    )
    job_id = nas.ok("submit", str(job_file)).stdout.strip()
    refused = nas.run("datasets", "delete", ds_id)
    assert refused.returncode == 1
    (line,) = refused.stderr.splitlines()
    assert line.startswith("error: ") and f"jobs {job_id} use this dataset" in line
    assert "(HTTP 409)" in line
    nas.ok("jobs", "delete", job_id)
    done = nas.ok("datasets", "delete", ds_id)
    assert done.stderr.strip() == f"deleted dataset {ds_id}"
    assert nas.json("datasets") == []

    missing = nas.run("datasets", "upload", str(tmp_path / "none.npz"))
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        f"error: cannot read {tmp_path / 'none.npz'}: no such file",
    )
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    refused = nas.run("datasets", "upload", str(bad))
    assert refused.returncode == 1 and refused.stderr.startswith("error: ")
    assert len(refused.stderr.splitlines()) == 1
