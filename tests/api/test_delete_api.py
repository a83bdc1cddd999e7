"""DELETE of jobs (cancel first; rows and files go; never under a worker's claim) and of
datasets (refused while a job uses one)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from nas_service.db import Artifact, Candidate, Database, Dataset, Job, JobEvent, TrainMetric
from nas_service.db import artifacts as arts
from nas_service.db import jobs as repo
from nas_service.db.results import CandidateIn, MetricRow, add_train_metrics, upsert_candidates
from nas_service.domain import JobStatus
from nas_service.settings import Settings
from tests.api.client import Api
from tests.api.specs import spec
from tests.api.uploads import npz_bytes


def _submit(api: Api, body: dict[str, Any] | None = None) -> uuid.UUID:
    r = api.post("/api/v1/jobs", json=body or spec())
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


def _rows(db: Database, jid: uuid.UUID) -> dict[str, int]:
    with db.transaction() as s:
        return {
            t.__tablename__: int(
                s.scalar(select(func.count()).select_from(t).where(t.job_id == jid)) or 0
            )
            for t in (JobEvent, TrainMetric, Candidate, Artifact)
        } | {"jobs": int(s.scalar(select(func.count()).where(Job.id == jid)) or 0)}


def _with_results(db: Database, settings: Settings, jid: uuid.UUID) -> tuple[Path, Path]:
    """Metrics, candidates, a ready export under the run dir, a checkpoint; (run dir, export)."""
    run = settings.data_dir / "runs" / str(jid)
    (run / "train").mkdir(parents=True)
    (run / "train" / "final.pt").write_bytes(b"weights")
    (run / "job.log").write_text("a line\n")
    export = run / "exports" / "sub.onnx"
    export.parent.mkdir()
    export.write_bytes(b"onnx")
    with db.transaction() as s:
        add_train_metrics(s, jid, [MetricRow(seq=0, metrics={"loss": 1.0})])
        (cid,) = upsert_candidates(s, jid, [CandidateIn(arch={"d": 1}, genotype=(1,))])
        owner = s.get(Job, jid).owner_id  # type: ignore[union-attr]
        cand = s.get(Candidate, cid)
        assert cand is not None
        art = arts.request_export(s, cand, owner, "subnet_onnx")
        arts.mark_artifact_ready(s, art.id, uri=str(export), sha256="0" * 64, size_bytes=4)
        repo.set_run_info(s, jid, run_dir=str(run), checkpoint_uri=str(run / "train/final.pt"))
    return run, export


def test_delete_a_finished_job_removes_its_rows_and_files(
    api: Api, other_api: Api, db: Database, app_settings: Settings
) -> None:
    jid = _submit(api)
    keep = _submit(api)
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
        assert repo.finish_job(s, jid, "w", JobStatus.succeeded) is not None
    run, export = _with_results(db, app_settings, jid)
    assert _rows(db, jid) == {
        "job_events": 3,
        "train_metrics": 1,
        "candidates": 1,
        "artifacts": 1,
        "jobs": 1,
    }
    assert api.get(f"/api/v1/jobs/{jid}").status_code == 200
    # Another key cannot delete it, nor learn it exists.
    r = other_api.delete(f"/api/v1/jobs/{jid}")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert run.is_dir()
    r = api.delete(f"/api/v1/jobs/{jid}")
    assert r.status_code == 204 and r.content == b""
    assert _rows(db, jid) == dict.fromkeys(
        ("job_events", "train_metrics", "candidates", "artifacts", "jobs"), 0
    )
    assert not run.exists() and not export.exists()
    assert (app_settings.data_dir / "runs").is_dir()  # only the job's own folder went
    assert api.get(f"/api/v1/jobs/{jid}").status_code == 404
    assert api.delete(f"/api/v1/jobs/{jid}").status_code == 404
    assert [j["id"] for j in api.get("/api/v1/jobs").json()["items"]] == [str(keep)]


def test_delete_a_queued_job_at_once(api: Api, db: Database) -> None:
    jid = _submit(api)
    assert api.delete(f"/api/v1/jobs/{jid}").status_code == 204
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is None  # nothing left for a dispatcher


def test_delete_a_running_job_cancels_first_and_answers_409_until_it_ends(
    api: Api, db: Database
) -> None:
    jid = _submit(api)
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w1") is not None
    for _ in range(2):  # asking again changes nothing: one cancel request
        r = api.delete(f"/api/v1/jobs/{jid}")
        assert r.status_code == 409, r.text
        assert r.headers["retry-after"] == "2"
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "job_running"
        assert "its cancel is requested" in r.json()["detail"]
    job = api.get(f"/api/v1/jobs/{jid}").json()
    assert (job["status"], job["cancel_requested"]) == ("running", True)
    kinds = [e["kind"] for e in api.get(f"/api/v1/jobs/{jid}/events").json()["items"]]
    assert kinds == ["created", "claimed", "cancel_requested"]
    # The worker still holds its claim: heartbeats go on and see the cancel.
    with db.transaction() as s:
        assert repo.heartbeat(s, jid, "w1") is True
    # The runner honours the cancel; now the job goes.
    with db.transaction() as s:
        assert repo.finish_job(s, jid, "w1", JobStatus.cancelled) is not None
    assert api.delete(f"/api/v1/jobs/{jid}").status_code == 204
    with db.transaction() as s:
        assert repo.heartbeat(s, jid, "w1") is None  # a late worker finds it gone: stops
        assert repo.finish_job(s, jid, "w1", JobStatus.succeeded) is None
    assert _rows(db, jid)["jobs"] == 0


def test_a_reaped_running_job_can_be_deleted_once_cancelled(api: Api, db: Database) -> None:
    """A worker that died: the reaper ends the job (its cancel was requested), then it goes."""
    from datetime import timedelta

    jid = _submit(api)
    with db.transaction() as s:
        assert repo.claim_next_job(s, "dead") is not None
    assert api.delete(f"/api/v1/jobs/{jid}").status_code == 409
    with db.transaction() as s:
        future = repo.db_now(s) + timedelta(seconds=120)
        assert repo.reap_stale(s, timedelta(seconds=60), now=future) == []
    assert api.get(f"/api/v1/jobs/{jid}").json()["status"] == "cancelled"
    assert api.delete(f"/api/v1/jobs/{jid}").status_code == 204


def test_delete_waits_for_a_claim_in_progress(api: Api, db: Database) -> None:
    """A dispatcher claiming the job at the same moment: the delete waits for the claim's
    transaction and then sees a running job (409), never deleting under the new claim."""
    jid = _submit(api)
    answers: list[Any] = []
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None  # row locked until this commits
        t = threading.Thread(target=lambda: answers.append(api.delete(f"/api/v1/jobs/{jid}")))
        t.start()
        time.sleep(0.5)
        assert answers == []  # blocked on the claim's row lock
    t.join(timeout=10)
    assert answers[0].status_code == 409 and answers[0].json()["code"] == "job_running"
    assert _rows(db, jid)["jobs"] == 1


def test_delete_is_refused_while_jobs_reuse_the_supernet(api: Api, db: Database) -> None:
    src = _submit(api)
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
        assert repo.finish_job(s, src, "w", JobStatus.succeeded) is not None
    reuse = _submit(api, spec(supernet_from=str(src)))
    r = api.delete(f"/api/v1/jobs/{src}")
    assert r.status_code == 409 and r.json()["code"] == "in_use"
    assert r.json()["errors"] == [
        {
            "field": "job_id",
            "reason": f"jobs {reuse} reuse this job's supernet (supernet_from): delete them first",
        }
    ]
    assert api.delete(f"/api/v1/jobs/{reuse}").status_code == 204
    assert api.delete(f"/api/v1/jobs/{src}").status_code == 204


def test_delete_waits_for_an_export_a_worker_is_making(
    api: Api, db: Database, app_settings: Settings
) -> None:
    jid = _submit(api)
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
        assert repo.finish_job(s, jid, "w", JobStatus.succeeded) is not None
        (cid,) = upsert_candidates(s, jid, [CandidateIn(arch={"d": 1}, genotype=(1,))])
        cand = s.get(Candidate, cid)
        assert cand is not None
        arts.request_export(s, cand, api.owner_id, "subnet_weights")
        (claimed,) = arts.claim_exports(s, "export-worker")
    r = api.delete(f"/api/v1/jobs/{jid}")
    assert r.status_code == 409 and r.json()["code"] == "in_use"
    assert r.headers["retry-after"] == "2"
    assert f"export {claimed.id} of this job is being made" in r.json()["errors"][0]["reason"]
    outside = app_settings.data_dir.parent / "elsewhere.pt"
    outside.write_bytes(b"not the service's")
    with db.transaction() as s:
        arts.mark_artifact_ready(s, claimed.id, uri=str(outside), sha256="0" * 64, size_bytes=1)
    assert api.delete(f"/api/v1/jobs/{jid}").status_code == 204
    assert outside.is_file()  # a row pointing outside data_dir never deletes there
    assert _rows(db, jid)["artifacts"] == 0


def test_delete_dataset(api: Api, other_api: Api, db: Database, app_settings: Settings) -> None:
    up = api.post("/api/v1/datasets", files={"file": ("blobs.npz", npz_bytes())}).json()
    # The upload as sent and the store it was converted into.
    stored = sorted((app_settings.data_dir / "datasets").iterdir(), key=lambda p: p.suffix)
    assert [p.suffix for p in stored] == [".npz", ".store"]
    mbv3 = {
        "id": "mbv3",
        "options": {"num_classes": 3, "in_channels": 1, "small_input": True, "resolutions": [8]},
    }
    body = spec(
        dataset={"id": up["id"]}, space=mbv3, **{"search.objectives": [{"name": "accuracy"}]}
    )
    jid = _submit(api, body)
    assert other_api.delete(f"/api/v1/datasets/{up['id']}").status_code == 404
    r = api.delete(f"/api/v1/datasets/{up['id']}")
    assert r.status_code == 409 and r.json()["code"] == "in_use"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"] == [
        {"field": "dataset_id", "reason": f"jobs {jid} use this dataset: delete them first"}
    ]
    # A finished job still counts: a retry or an export reads the dataset again.
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
        assert repo.finish_job(s, jid, "w", JobStatus.failed, error="x") is not None
    assert api.delete(f"/api/v1/datasets/{up['id']}").status_code == 409
    assert api.delete(f"/api/v1/jobs/{jid}").status_code == 204
    r = api.delete(f"/api/v1/datasets/{up['id']}")
    assert r.status_code == 204 and r.content == b""
    assert not any(p.exists() for p in stored)
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Dataset)) == 0
        assert s.scalar(select(func.count()).select_from(Artifact)) == 0
    assert api.get(f"/api/v1/datasets/{up['id']}").status_code == 404
    assert api.get("/api/v1/datasets").json() == {"items": [], "next_cursor": None}
    assert api.delete(f"/api/v1/datasets/{up['id']}").status_code == 404
    # A job naming the deleted dataset is refused at submission.
    again = api.post("/api/v1/jobs", json=body)
    assert again.status_code == 422 and again.json()["errors"][0]["field"] == "dataset.id"
