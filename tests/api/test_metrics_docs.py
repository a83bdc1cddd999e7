"""Prometheus metrics at /metrics, and /docs and /redoc served with no outside host."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from nas_service.db import Database, Job
from nas_service.db import jobs as repo
from tests.api.client import Api
from tests.api.specs import spec


def _scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_report_requests_jobs_queue_and_heartbeats(api: Api, db: Database) -> None:
    ids = [uuid.UUID(api.post("/api/v1/jobs", json=spec()).json()["id"]) for _ in range(3)]
    with db.transaction() as s:
        assert repo.claim_next_job(s, "worker-a") is not None  # ids[0] runs
        # Its last heartbeat was 30 s ago by the store's clock.
        beat = repo.db_now(s) - timedelta(seconds=30)
        s.execute(update(Job).where(Job.id == ids[0]).values(heartbeat_at=beat))
    for _ in range(4):
        assert api.get(f"/api/v1/jobs/{ids[1]}").status_code == 200
    assert api.get(f"/api/v1/jobs/{uuid.uuid4()}").status_code == 404
    assert api.get("/api/v1/no-such-thing").status_code == 404
    anon = TestClient(api.app)  # no key needed: a Prometheus scrape
    m = _scrape(anon)

    def hist(route: str, status: str, method: str = "GET") -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return m[("nas_http_request_duration_seconds_count", labels)]

    assert hist("/api/v1/jobs/{job_id}", "200") == 4
    assert hist("/api/v1/jobs/{job_id}", "404") == 1
    assert hist("/api/v1/jobs", "201", "POST") == 3
    assert hist("unmatched", "404") == 1
    labels = (("le", "+Inf"), ("method", "GET"), ("route", "/api/v1/jobs/{job_id}"))
    assert m[("nas_http_request_duration_seconds_bucket", (*labels, ("status", "200")))] == 4
    assert m[("nas_store_up", ())] == 1
    jobs = {dict(k[1])["state"]: v for k, v in m.items() if k[0] == "nas_jobs"}
    assert jobs == {"queued": 2, "running": 1, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert m[("nas_queue_depth", ())] == 2
    assert m[("nas_queue_oldest_age_seconds", ())] >= 0
    assert m[("nas_pending_exports", ())] == 0
    worker = (("worker", "worker-a"),)
    assert m[("nas_worker_running_jobs", worker)] == 1
    assert 29 <= m[("nas_worker_heartbeat_age_seconds", worker)] < 60
    assert m[("nas_worker_last_heartbeat_timestamp_seconds", worker)] > 1.7e9
    # The scrape itself is measured on the next one.
    assert (
        _scrape(anon)[
            (
                "nas_http_request_duration_seconds_count",
                (("method", "GET"), ("route", "/metrics"), ("status", "200")),
            )
        ]
        == 1
    )


def test_metrics_answer_while_the_store_is_down(tmp_path: object) -> None:
    from nas_service.api import create_app
    from nas_service.settings import Settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
        data_dir=tmp_path,
    )
    m = _scrape(TestClient(create_app(settings)))
    assert m[("nas_store_up", ())] == 0
    assert not any(k[0] == "nas_jobs" for k in m)


ASSET = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def test_docs_and_redoc_load_only_local_assets(api: Api) -> None:
    anon = TestClient(api.app)
    for page in ("/docs", "/redoc"):
        r = anon.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        html = r.text
        assert "http://" not in html and "https://" not in html, page
        assert "//" not in html.replace("://", "").replace("<!--", ""), page
        refs = [a or b for a, b in ASSET.findall(html)]
        assert refs and all(ref.startswith("/") for ref in refs), refs
        assert "/openapi.json" in refs
        scripts = [ref for ref in refs if ref.endswith(".js")]
        assert scripts, page
        for ref in refs:
            got = anon.get(ref)
            assert got.status_code == 200, ref
            if ref.endswith(".js"):
                assert "javascript" in got.headers["content-type"]
                assert len(got.content) > 100_000, ref  # the real bundle, not a stub
            elif ref.endswith(".css"):
                assert got.headers["content-type"].startswith("text/css")
    # Swagger's online validator would call out: it is off.
    assert '"validatorUrl": null' in anon.get("/docs").text
