"""GET /jobs/{id}/logs: the runner's log lines for the job, read and followed by byte offset."""

from __future__ import annotations

import re
import uuid

import pytest

from nas_service.db import Database
from nas_service.db import jobs as repo
from nas_service.domain import JobStatus
from nas_service.services.job_files import log_path
from nas_service.settings import Settings
from tests.api.client import Api
from tests.api.specs import spec


def _job(api: Api) -> uuid.UUID:
    r = api.post("/api/v1/jobs", json=spec())
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


def test_log_is_read_by_offset_in_whole_lines(
    api: Api, other_api: Api, db: Database, app_settings: Settings
) -> None:
    jid = _job(api)
    url = f"/api/v1/jobs/{jid}/logs"
    empty = api.get(url)  # queued: no log yet
    assert empty.status_code == 200 and empty.content == b""
    assert empty.headers["content-type"] == "text/plain; charset=utf-8"
    assert (empty.headers["x-log-offset"], empty.headers["x-log-size"]) == ("0", "0")
    assert "link" not in empty.headers
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
    path = log_path(app_settings, jid)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"line one\nline two\npartial")
    r = api.get(url)
    # The line still being written is held back while the job runs.
    assert r.text == "line one\nline two\n" and r.headers["x-log-offset"] == "18"
    assert r.headers["x-log-size"] == "25" and "link" not in r.headers
    with path.open("ab") as fh:
        fh.write(b" now whole\nline four\n")
    follow = api.get(url, params={"offset": r.headers["x-log-offset"]})
    assert follow.text == "partial now whole\nline four\n"
    assert follow.headers["x-log-offset"] == str(path.stat().st_size)
    # A byte limit cuts on a line boundary and links to the rest.
    small = api.get(url, params={"limit": 12})
    assert small.text == "line one\n" and small.headers["x-log-offset"] == "9"
    assert small.headers["link"] == f'<{url}?limit=12&offset=9>; rel="next"'
    nxt = api.get(small.headers["link"][1 : small.headers["link"].index(">")])
    assert nxt.text == "line two\n"
    # A line longer than the limit still comes, in pieces.
    assert api.get(url, params={"offset": 18, "limit": 4}).text == "part"
    # Past the end: the field and the reason.
    bad = api.get(url, params={"offset": 10_000})
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {
            "field": "offset",
            "reason": f"10000 is beyond the end of the log ({path.stat().st_size} bytes); "
            "start at 0",
        }
    ]
    assert api.get(url, params={"limit": 10**9}).status_code == 422
    # A finished job's last line is given even without its newline.
    with path.open("ab") as fh:
        fh.write(b"the end")
    with db.transaction() as s:
        assert repo.finish_job(s, jid, "w", JobStatus.failed, error="boom") is not None
    end = api.get(url, params={"offset": follow.headers["x-log-offset"]})
    assert end.text == "the end"
    assert other_api.get(url).status_code == 404


@pytest.mark.slow
def test_the_runner_writes_the_jobs_log(api: Api, db: Database, app_settings: Settings) -> None:
    """A real (tiny) job run by the runner in this process (local engine): the log holds its
    stages, epochs, front and end, with UTC timestamps."""
    from tests.workers.conftest_ray import TINY_SPEC
    from workers.pipeline import LocalEngine
    from workers.runtime.runner import run_job

    r = api.post("/api/v1/jobs", json={**TINY_SPEC, "name": "logged"})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w-log") is not None
    assert run_job(jid, app_settings, "w-log", engine=LocalEngine()) == "succeeded"
    r = api.get(f"/api/v1/jobs/{jid}/logs")
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert r.text.endswith("\n") and len(lines) >= 8, r.text
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR) ")
    assert all(stamp.match(line) for line in lines), lines
    text = r.text
    assert f"job {jid}: claimed by worker w-log" in lines[0]
    for needle in (
        "space mlp, dataset digits, evolution search of 12, devices cpu",
        "stage training:",
        "training full epoch 1",
        "stage searching:",
        "front on cpu: ",
        "stage measuring:",
        f"job {jid}: succeeded",
    ):
        assert needle in text, (needle, text)
    assert (
        text.index("stage training")
        < text.index("stage searching")
        < text.index(f"job {jid}: succeeded")
    )
    offset = int(r.headers["x-log-offset"])
    assert offset == log_path(app_settings, jid).stat().st_size
    # Following from there: nothing new.
    assert api.get(f"/api/v1/jobs/{jid}/logs", params={"offset": offset}).content == b""
    # The log goes with the job.
    assert api.delete(f"/api/v1/jobs/{jid}").status_code == 204
    assert not log_path(app_settings, jid).exists()
