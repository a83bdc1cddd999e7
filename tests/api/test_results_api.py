"""Candidates, the Pareto front (ETag / 304) and subnet downloads (202 -> file)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from nas_service.db import Database
from nas_service.db import artifacts as arts
from nas_service.db import jobs as repo
from nas_service.db.results import CandidateIn, set_pareto, upsert_candidates
from nas_service.domain import CandidateSource, JobStatus
from tests.api.client import Api
from tests.api.specs import spec


def _job_with_candidates(api: Api, db: Database) -> tuple[uuid.UUID, list[int]]:
    jid = uuid.UUID(api.post("/api/v1/jobs", json=spec()).json()["id"])
    rows = [
        CandidateIn(arch={"d": 1}, genotype=(1,), accuracy=0.7, flops=300, latency_ms=2.0),
        CandidateIn(arch={"d": 2}, genotype=(2,), accuracy=0.9, flops=900, latency_ms=None),
        CandidateIn(
            arch={"d": 3},
            genotype=(3,),
            accuracy=0.8,
            flops=500,
            latency_ms=1.0,
            source=CandidateSource.measured,
            feasible=False,
        ),
    ]
    with db.transaction() as s:
        ids = upsert_candidates(s, jid, rows)
    return jid, ids


def _finish(db: Database, jid: uuid.UUID, status: JobStatus) -> None:
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
        assert repo.finish_job(s, jid, "w", status) is not None


def test_candidates_filter_sort_paginate(api: Api, db: Database) -> None:
    jid, ids = _job_with_candidates(api, db)
    base = f"/api/v1/jobs/{jid}/candidates"
    r = api.get(base, params={"sort": "accuracy", "order": "desc"}).json()
    assert [c["id"] for c in r["items"]] == [ids[1], ids[2], ids[0]] and r["next_cursor"] is None
    first = api.get(base, params={"sort": "latency_ms", "limit": 2})
    r = first.json()
    assert [c["id"] for c in r["items"]] == [ids[2], ids[0]] and r["next_cursor"]
    link = first.headers["link"]
    assert link.startswith(f"<{base}?") and link.endswith('>; rel="next"')
    r = api.get(link[1 : link.index(">")]).json()  # the Link keeps sort and limit
    assert [c["id"] for c in r["items"]] == [ids[1]] and r["next_cursor"] is None
    # A cursor belongs to its sort: another sort with it is refused, naming the field.
    other = api.get(base, params={"sort": "flops", "cursor": first.json()["next_cursor"]})
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "cursor"
    assert "sorted by latency_ms asc" in other.json()["errors"][0]["reason"]
    assert [c["id"] for c in api.get(base, params={"source": "measured"}).json()["items"]] == [
        ids[2]
    ]
    assert [c["id"] for c in api.get(base, params={"feasible": "true"}).json()["items"]] == ids[:2]
    one = api.get(base, params={"sort": "flops"}).json()["items"][0]
    assert (one["arch"], one["genotype"], one["flops"], one["is_pareto"]) == (
        {"d": 1},
        "1",
        300,
        False,
    )
    bad = api.get(base, params={"sort": "colour"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "sort"


def test_pareto_etag_and_history(api: Api, other_api: Api, db: Database) -> None:
    jid, ids = _job_with_candidates(api, db)
    url = f"/api/v1/jobs/{jid}/pareto"
    first = api.get(url)
    assert first.status_code == 200
    body = first.json()
    assert (body["front"], body["version"], body["final"], body["status"]) == (
        [],
        0,
        False,
        "queued",
    )
    etag = first.headers["etag"]
    unchanged = api.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    with db.transaction() as s:
        set_pareto(s, jid, [ids[0], ids[2]], hypervolume=0.42, evaluations=3)
    changed = api.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    body = changed.json()
    assert [c["id"] for c in body["front"]] == [ids[0], ids[2]]
    assert all(c["is_pareto"] for c in body["front"])
    assert [(h["evaluations"], h["hypervolume"]) for h in body["hypervolume_history"]] == [
        (3, 0.42)
    ]
    # A status change alone also changes the ETag (the body reports the status).
    _finish(db, jid, JobStatus.succeeded)
    final = api.get(url, headers={"If-None-Match": changed.headers["etag"]})
    assert final.status_code == 200 and final.json()["final"] is True
    assert other_api.get(url, headers={"If-None-Match": etag}).status_code == 404


def test_subnet_export_request_then_download(
    api: Api, other_api: Api, db: Database, tmp_path: Path
) -> None:
    jid, ids = _job_with_candidates(api, db)
    url = f"/api/v1/candidates/{ids[0]}/subnet"
    r = api.get(url, params={"format": "onnx"})
    assert r.status_code == 202 and r.headers["retry-after"] == "2"
    art_id = r.json()["artifact_id"]
    assert api.get(url, params={"format": "onnx"}).json()["artifact_id"] == art_id
    assert other_api.get(url, params={"format": "onnx"}).status_code == 404
    with db.transaction() as s:
        assert [a.id for a in arts.pending_exports(s)] == [art_id]
    payload = b"onnx-bytes" * 100
    f = tmp_path / "sub.onnx"
    f.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    with db.transaction() as s:
        arts.mark_artifact_ready(s, art_id, uri=str(f), sha256=digest, size_bytes=len(payload))
    got = api.get(url, params={"format": "onnx"})
    assert got.status_code == 200 and got.content == payload
    assert got.headers["etag"] == f'"{digest}"'
    assert f"subnet-{jid.hex[:8]}-{ids[0]}.onnx" in got.headers["content-disposition"]
    cached = api.get(url, params={"format": "onnx"}, headers={"If-None-Match": f'"{digest}"'})
    assert cached.status_code == 304
    bad = api.get(url, params={"format": "pickle"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "format"
    assert api.get("/api/v1/candidates/999999/subnet").status_code == 404


def test_failed_export_and_failed_job(api: Api, db: Database) -> None:
    jid, ids = _job_with_candidates(api, db)
    url = f"/api/v1/candidates/{ids[1]}/subnet"
    art_id = api.get(url).json()["artifact_id"]  # default format: weights
    with db.transaction() as s:
        found = arts.find_artifact(s, ids[1], "subnet_weights")
        assert found is not None and found.id == art_id
        arts.mark_artifact_failed(s, art_id, "parity check failed: max |diff| 0.3")
    r = api.get(url)
    assert r.status_code == 500 and r.json()["code"] == "export_failed"
    assert "parity check failed" in r.json()["detail"] and "retry=true" in r.json()["detail"]
    again = api.get(url, params={"retry": "true"})
    assert again.status_code == 202, again.text
    assert again.json()["artifact_id"] == art_id
    with db.transaction() as s:
        assert [a.id for a in arts.pending_exports(s)] == [art_id]
    _finish(db, jid, JobStatus.failed)
    r = api.get(f"/api/v1/candidates/{ids[2]}/subnet", params={"format": "torchscript"})
    assert r.status_code == 409 and "is failed" in r.json()["detail"]


def test_finished_job_shows_its_outcome_and_held_out_accuracy(api: Api, db: Database) -> None:
    """A job that found no feasible subnet says so in the job and in its front; a measured
    candidate shows its validation and its held-out test accuracy apart, and sorts by either."""
    jid = uuid.UUID(api.post("/api/v1/jobs", json=spec()).json()["id"])
    rows = [
        CandidateIn(
            arch={"d": 1},
            genotype=(1,),
            accuracy=0.93,
            test_accuracy=0.88,
            flops=300,
            source=CandidateSource.measured,
        ),
        CandidateIn(
            arch={"d": 2},
            genotype=(2,),
            accuracy=0.95,
            test_accuracy=0.86,
            flops=900,
            source=CandidateSource.measured,
        ),
        CandidateIn(arch={"d": 3}, genotype=(3,), accuracy=0.9, flops=500),
    ]
    with db.transaction() as s:
        ids = upsert_candidates(s, jid, rows)
    base = f"/api/v1/jobs/{jid}/candidates"
    by_test = api.get(base, params={"sort": "test_accuracy", "order": "desc"}).json()["items"]
    assert [c["id"] for c in by_test][:2] == [ids[0], ids[1]]
    first = next(c for c in by_test if c["id"] == ids[0])
    assert (first["accuracy"], first["test_accuracy"]) == (0.93, 0.88)
    assert next(c for c in by_test if c["id"] == ids[2])["test_accuracy"] is None
    outcome = {
        "code": "no_feasible_subnet",
        "message": "no feasible subnet on cpu: the smallest network measures 7.2 ms, above the "
        "5 ms bound (latency_ms<=5)",
        "devices": {"cpu": {"code": "no_feasible_subnet", "front": 0, "closest": []}},
    }
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
        assert repo.finish_job(s, jid, "w", JobStatus.succeeded, outcome=outcome) is not None
    job = api.get(f"/api/v1/jobs/{jid}").json()
    assert (job["status"], job["outcome"]) == ("succeeded", outcome)
    front = api.get(f"/api/v1/jobs/{jid}/pareto").json()
    assert (front["front"], front["final"], front["outcome"]) == ([], True, outcome)
    schema = api.get("/openapi.json").json()["components"]["schemas"]["CandidateOut"]
    assert "held-out" in schema["properties"]["test_accuracy"]["description"]
    assert "validation" in schema["properties"]["accuracy"]["description"]
