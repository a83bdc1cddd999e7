"""What every endpoint shares: one cursor pagination with Link headers on every list, ETags on
job reads, 405 with Allow, and the OpenAPI that documents them."""

from __future__ import annotations

import uuid
from typing import Any

from nas_service.db import Database, results
from nas_service.db import devices as device_repo
from nas_service.db import jobs as repo
from nas_service.db.results import MetricRow
from tests.api.client import Api
from tests.api.specs import spec
from tests.api.uploads import npz_bytes

LISTS = (
    "/api/v1/jobs",
    "/api/v1/datasets",
    "/api/v1/devices",
    "/api/v1/search-spaces",
    "/api/v1/jobs/{job_id}/events",
    "/api/v1/jobs/{job_id}/metrics",
    "/api/v1/jobs/{job_id}/candidates",
)


def _link(r: Any) -> str | None:
    """The target of a ``Link: <...>; rel="next"`` header, or None."""
    value = r.headers.get("link")
    if value is None:
        return None
    target, rel = value.split(";", 1)
    assert rel.strip() == 'rel="next"', value
    assert target.startswith("</api/v1/") and target.endswith(">"), value
    return target[1:-1]


def _walk(api: Api, url: str, key: str, **params: Any) -> tuple[list[Any], int]:
    """Follow Link headers from the first page to the last: (every item's key, pages)."""
    r = api.get(url, params={"limit": 1, **params})
    seen: list[Any] = []
    pages = 0
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next_cursor"}, body.keys()
        assert len(body["items"]) <= 1
        seen += [item[key] for item in body["items"]]
        pages += 1
        nxt = _link(r)
        # The Link header and next_cursor say the same thing.
        assert (nxt is None) == (body["next_cursor"] is None), (url, nxt, body["next_cursor"])
        if nxt is None:
            return seen, pages
        assert "limit=1" in nxt and f"cursor={body['next_cursor']}" in nxt.replace("%3D", "=")
        for k, v in params.items():
            assert f"{k}={v}" in nxt, (k, nxt)
        r = api.get(nxt)


def test_every_list_pages_by_cursor_with_link_headers(api: Api, db: Database) -> None:
    jobs = [api.post("/api/v1/jobs", json=spec()).json()["id"] for _ in range(3)]
    seen, pages = _walk(api, "/api/v1/jobs", "id")
    assert seen == list(reversed(jobs)) and pages == 3

    made = []
    for i in range(3):
        r = api.post("/api/v1/datasets", files={"file": (f"d{i}.npz", npz_bytes())})
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    assert _walk(api, "/api/v1/datasets", "id") == (list(reversed(made)), 3)

    with db.transaction() as s:
        device_repo.upsert_device(s, "phone-a", description="a test device")
    devices, pages = _walk(api, "/api/v1/devices", "name")
    assert devices == ["cpu", "cpu-stable", "phone-a"] and pages == 3

    spaces, _ = _walk(api, "/api/v1/search-spaces", "id")
    assert spaces == sorted(spaces) and {"mbv3", "mlp"} <= set(spaces)

    jid = uuid.UUID(jobs[0])
    with db.transaction() as s:
        for i in range(2):
            repo.record_event(s, jid, "note", message=f"note {i}")
        results.add_train_metrics(s, jid, [MetricRow(seq=i, metrics={"x": i}) for i in range(3)])
        results.upsert_candidates(
            s,
            jid,
            [
                results.CandidateIn(arch={"d": i}, genotype=(i,), accuracy=a)
                for i, a in enumerate([0.5, 0.9, None, 0.7])
            ],
        )
    events, pages = _walk(api, f"/api/v1/jobs/{jid}/events", "kind")
    assert events == ["created", "note", "note"] and pages == 3
    assert _walk(api, f"/api/v1/jobs/{jid}/metrics", "seq") == ([0, 1, 2], 3)
    accs, pages = _walk(
        api, f"/api/v1/jobs/{jid}/candidates", "accuracy", sort="accuracy", order="desc"
    )
    assert accs == [0.9, 0.7, 0.5, None] and pages == 4  # NULLs last, none lost or repeated
    accs, _ = _walk(api, f"/api/v1/jobs/{jid}/candidates", "accuracy", sort="accuracy")
    assert accs == [0.5, 0.7, 0.9, None]


def test_the_openapi_documents_one_pagination(api: Api) -> None:
    schema = api.get("/openapi.json").json()
    text = str(schema)
    assert "next_offset" not in text and "next_after" not in text
    for path in LISTS:
        op = schema["paths"][path]["get"]
        names = {p["name"] for p in op["parameters"]}
        assert {"cursor", "limit"} <= names, (path, names)
        assert "offset" not in names
        assert "Link" in op["responses"]["200"]["headers"], path
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        model = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(model["properties"]) == {"items", "next_cursor"}, path


def test_bad_cursors_are_422_naming_the_field(api: Api) -> None:
    jobs = [api.post("/api/v1/jobs", json=spec()).json()["id"] for _ in range(2)]
    job_cursor = api.get("/api/v1/jobs", params={"limit": 1}).json()["next_cursor"]
    assert job_cursor
    for url in (
        "/api/v1/datasets",
        "/api/v1/devices",
        f"/api/v1/jobs/{jobs[0]}/events",
        f"/api/v1/jobs/{jobs[0]}/candidates",
    ):
        for bad in (job_cursor, "garbage!", "W1tdXQ"):  # another list's, junk, base64 of [[]]
            r = api.get(url, params={"cursor": bad})
            assert r.status_code == 422, (url, bad, r.text)
            assert r.json()["errors"] == [
                {
                    "field": "cursor",
                    "reason": "not a cursor returned by this API (pass next_cursor unchanged)",
                }
            ]


def test_job_reads_carry_an_etag(api: Api, db: Database) -> None:
    jid = api.post("/api/v1/jobs", json=spec()).json()["id"]
    url = f"/api/v1/jobs/{jid}"
    first = api.get(url)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"') and etag.endswith('"')
    assert api.get(url).headers["etag"] == etag  # unchanged job, same tag
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        same = api.get(url, headers={"If-None-Match": header})
        assert same.status_code == 304 and same.content == b"", header
        assert same.headers["etag"] == etag
    assert api.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
    changed = api.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["status"] == "running"
    assert changed.headers["etag"] != etag
    op = api.get("/openapi.json").json()["paths"]["/api/v1/jobs/{job_id}"]["get"]
    assert "304" in op["responses"] and "ETag" in op["responses"]["200"]["headers"]


def test_405_names_the_allowed_methods(api: Api) -> None:
    jid = api.post("/api/v1/jobs", json=spec()).json()["id"]
    for method, path, allow in [
        ("PUT", "/api/v1/jobs", "GET, POST"),
        ("PATCH", f"/api/v1/jobs/{jid}", "DELETE, GET"),
        ("GET", f"/api/v1/jobs/{jid}/cancel", "POST"),
        ("POST", f"/api/v1/datasets/{uuid.uuid4()}", "DELETE, GET"),
        ("DELETE", "/api/v1/devices", "GET"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ]:
        r = api.request(method, path)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allow, (method, path)
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert (body["code"], body["status"], body["instance"]) == (
            "method_not_allowed",
            405,
            path,
        )
        assert body["detail"] == f"{method} is not allowed on {path}; allowed: {allow}"
