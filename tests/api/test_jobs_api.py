"""Jobs endpoints: submission and its validation, listing, cancel, retry, events, metrics."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from nas_service.db import Database
from nas_service.db import jobs as repo
from nas_service.db.results import MetricRow, add_train_metrics
from nas_service.domain import JobStatus
from tests.api.client import Api
from tests.api.specs import spec


def _submit(api: Api, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = api.post("/api/v1/jobs", json=body or spec())
    assert r.status_code == 201, r.text
    return dict(r.json())


def _errors(r: Any) -> dict[str, str]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["code"] == "validation_error" and body["status"] == 422
    return {e["field"]: e["reason"] for e in body["errors"]}


def test_submit_then_read(api: Api) -> None:
    r = api.post("/api/v1/jobs", json=spec())
    assert r.status_code == 201
    job = r.json()
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert (job["status"], job["attempt"], job["space_id"], job["name"]) == (
        "queued",
        0,
        "mlp",
        "tiny mlp",
    )
    assert job["spec"]["search"]["budget"] == 20
    got = api.get(r.headers["location"]).json()
    assert got["id"] == job["id"] and got["elapsed_s"] is None


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        ({"space.id": "resnet"}, "space.id", "unknown search space 'resnet'"),
        ({"space.options": {"depths": "x"}}, "space.options", "depths"),
        ({"space.options": {"colour": 1}}, "space.options.colour", "unknown option 'colour'"),
        ({"devices": ["cpu", "tpu"]}, "devices[1]", "unknown device 'tpu'"),
        ({"devices": ["cpu", "cpu"]}, "devices", "more than once"),
        ({"dataset": {"name": "mnist"}}, "dataset.name", "unknown built-in dataset 'mnist'"),
        ({"dataset": {"name": "digits", "id": str(uuid.uuid4())}}, "dataset", "exactly one"),
        ({"dataset": {"id": str(uuid.uuid4())}}, "dataset.id", "no dataset"),
        (
            {"search.objectives": [{"name": "accuracy"}, {"name": "accuracy"}]},
            "search.objectives",
            "listed twice",
        ),
        ({"search.objectives": [{"name": "energy"}]}, "search.objectives[0].name", "accuracy"),
        (
            {"search.objectives": [{"name": "accuracy", "bound": 1.5}]},
            "search.objectives[0].bound",
            "(0, 1]",
        ),
        (
            {"search.objectives": [{"name": "accuracy"}, {"name": "latency_ms", "bound": -2}]},
            "search.objectives[1].bound",
            "must be positive",
        ),
        (
            {"search.objectives": [{"name": "accuracy", "direction": "min"}]},
            "search.objectives[0].direction",
            "only be maximised",
        ),
        (
            {"search.objectives": [{"name": "accuracy"}, {"name": "flops", "bound": 10}]},
            "search.objectives[1].bound",
            "impossible: the smallest network",
        ),
        ({"search.budget": 5000}, "search.budget", "exceeds the limit 1000"),
        ({"search.budget": 0}, "search.budget", "greater than or equal to 1"),
        ({"training.epochs_scale": 9}, "training.epochs_scale", "exceeds the limit 4"),
        ({"training.sampler_policy": "magic"}, "training.sampler_policy", "unknown sampler_policy"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"supernet_from": str(uuid.uuid4())}, "supernet_from", "no job"),
        (
            {"dataset.options": {"val_fracton": 0.3}},
            "dataset.options.val_fracton",
            "unknown option for digits datasets; allowed: ['test_fraction', 'val_fraction']",
        ),
        (
            {"dataset.options": {"val_fraction": 0}},
            "dataset.options.val_fraction",
            "greater than 0",
        ),
        ({"dataset.options": {"val_fraction": "lots"}}, "dataset.options.val_fraction", "number"),
        (
            {"dataset.options": {"val_fraction": 0.5, "test_fraction": 0.4}},
            "dataset.options",
            "must stay below 0.9",
        ),
        (
            {"dataset": {"name": "synthetic", "options": {"n": 100_000, "shape": [3, 256, 256]}}},
            "dataset.options",
            "at most 50,000,000",
        ),
        (
            {"dataset": {"name": "synthetic", "options": {"shape": [8, 8]}}},
            "dataset.options",
            "must be [D] or [C, H, W]",
        ),
    ],
)
def test_submit_rejects_bad_specs(
    api: Api, changes: dict[str, Any], field: str, needle: str
) -> None:
    errors = _errors(api.post("/api/v1/jobs", json=spec(**changes)))
    assert field in errors, errors
    assert needle in errors[field]


def test_validation_reports_every_field_at_once(api: Api) -> None:
    body = spec(**{"devices": ["gpu7"], "search.budget": 4000, "training.epochs_scale": 8})
    assert set(_errors(api.post("/api/v1/jobs", json=body))) == {
        "devices[0]",
        "search.budget",
        "training.epochs_scale",
    }


def test_malformed_json_is_a_400_problem(api: Api) -> None:
    r = api.post("/api/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert (body["code"], body["status"], body["instance"]) == (
        "malformed_body",
        400,
        "/api/v1/jobs",
    )
    assert body["errors"] == [
        {
            "field": "body",
            "reason": "the body is not valid JSON at character 1: Expecting property name "
            "enclosed in double quotes",
        }
    ]
    assert body["detail"] == body["errors"][0]["reason"]
    # The OpenAPI documents exactly this answer.
    op = api.get("/openapi.json").json()["paths"]["/api/v1/jobs"]["post"]
    assert "malformed JSON" in op["responses"]["400"]["description"]
    # Valid JSON of the wrong shape is still a 422 naming the field.
    r = api.post("/api/v1/jobs", content=b"[1]", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_supernet_from_must_be_own_succeeded_same_space(
    api: Api, other_api: Api, db: Database
) -> None:
    src = _submit(api)
    errors = _errors(api.post("/api/v1/jobs", json=spec(supernet_from=src["id"])))
    assert "is queued" in errors["supernet_from"]
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
        assert repo.finish_job(s, uuid.UUID(src["id"]), "w", JobStatus.succeeded) is not None
    assert _submit(api, spec(supernet_from=src["id"]))["supernet_from"] == src["id"]
    other_space = spec(**{"space.options": {"widths": [16, 32], "depths": [1, 2]}})
    errors = _errors(api.post("/api/v1/jobs", json={**other_space, "supernet_from": src["id"]}))
    assert "the space must be the same" in errors["supernet_from"]
    errors = _errors(other_api.post("/api/v1/jobs", json=spec(supernet_from=src["id"])))
    assert "no job" in errors["supernet_from"]


def test_too_many_active_jobs(api: Api) -> None:
    for _ in range(5):
        _submit(api)
    r = api.post("/api/v1/jobs", json=spec())
    assert r.status_code == 429 and r.json()["code"] == "too_many_jobs"
    assert "limit is 5" in r.json()["detail"]


def test_list_paginates_with_cursor_and_filters(api: Api, other_api: Api, db: Database) -> None:
    ids = [_submit(api)["id"] for _ in range(5)]
    _submit(other_api)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == list(reversed(ids))  # newest first, no gaps, no repeats
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None  # the oldest: ids[0]
    running = api.get("/api/v1/jobs", params={"status": "running"}).json()["items"]
    assert [j["id"] for j in running] == [ids[0]]
    both = api.get("/api/v1/jobs", params=[("status", "running"), ("status", "queued")])
    assert len(both.json()["items"]) == 5
    assert _errors(api.get("/api/v1/jobs", params={"cursor": "garbage!"})) == {
        "cursor": "not a cursor returned by this API (pass next_cursor unchanged)"
    }
    assert "status[0]" in _errors(api.get("/api/v1/jobs", params={"status": "paused"}))
    assert "limit" in _errors(api.get("/api/v1/jobs", params={"limit": 10_000}))


def test_cancel_and_retry(api: Api, db: Database) -> None:
    queued = _submit(api)["id"]
    running = _submit(api)["id"]
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None  # claims `queued` (oldest)
        assert repo.claim_next_job(s, "w2") is not None
    r = api.post(f"/api/v1/jobs/{running}/cancel")
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    assert r.json()["status"] == "running"
    with db.transaction() as s:
        assert repo.finish_job(s, uuid.UUID(running), "w2", JobStatus.cancelled) is not None
        assert repo.requeue_job(s, uuid.UUID(queued), "test") is not None
    r = api.post(f"/api/v1/jobs/{queued}/cancel")
    assert r.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/jobs/{queued}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    r = api.post(f"/api/v1/jobs/{running}/retry")
    assert r.status_code == 200 and r.json()["status"] == "queued"
    assert r.json()["cancel_requested"] is False
    r = api.post(f"/api/v1/jobs/{running}/retry")
    assert r.status_code == 409 and "only failed or cancelled" in r.json()["detail"]
    events = api.get(f"/api/v1/jobs/{running}/events").json()
    kinds = [e["kind"] for e in events["items"]]
    assert kinds == ["created", "claimed", "cancel_requested", "transition", "retry"]
    assert events["next_cursor"] is None
    page = api.get(f"/api/v1/jobs/{running}/events", params={"limit": 2})
    assert page.json()["next_cursor"] is not None
    rest = api.get(f"/api/v1/jobs/{running}/events", params={"cursor": page.json()["next_cursor"]})
    assert [e["kind"] for e in rest.json()["items"]] == kinds[2:]
    # Following a job: only the events after the last id seen.
    last = events["items"][2]["id"]
    newer = api.get(f"/api/v1/jobs/{running}/events", params={"after": last}).json()
    assert [e["kind"] for e in newer["items"]] == kinds[3:]


def test_metrics_after_seq(api: Api, db: Database) -> None:
    jid = _submit(api)["id"]
    with db.transaction() as s:
        add_train_metrics(
            s,
            uuid.UUID(jid),
            [MetricRow(seq=i, metrics={"loss": 2.0 - i}, epoch=i) for i in range(4)],
        )
    all_rows = api.get(f"/api/v1/jobs/{jid}/metrics").json()
    assert [m["seq"] for m in all_rows["items"]] == [0, 1, 2, 3]
    assert all_rows["next_cursor"] is None
    later = api.get(f"/api/v1/jobs/{jid}/metrics", params={"after": 1}).json()
    assert [(m["seq"], m["metrics"]["loss"]) for m in later["items"]] == [(2, 0.0), (3, -1.0)]
    assert api.get(f"/api/v1/jobs/{jid}/metrics", params={"after": 3}).json() == {
        "items": [],
        "next_cursor": None,
    }
    first = api.get(f"/api/v1/jobs/{jid}/metrics", params={"limit": 3})
    assert [m["seq"] for m in first.json()["items"]] == [0, 1, 2]
    rest = api.get(f"/api/v1/jobs/{jid}/metrics", params={"cursor": first.json()["next_cursor"]})
    assert [m["seq"] for m in rest.json()["items"]] == [3]


def test_another_keys_job_is_not_found(api: Api, other_api: Api) -> None:
    jid = _submit(api)["id"]
    for method, path in [
        ("GET", f"/api/v1/jobs/{jid}"),
        ("POST", f"/api/v1/jobs/{jid}/cancel"),
        ("POST", f"/api/v1/jobs/{jid}/retry"),
        ("GET", f"/api/v1/jobs/{jid}/events"),
        ("GET", f"/api/v1/jobs/{jid}/metrics"),
        ("GET", f"/api/v1/jobs/{jid}/candidates"),
        ("GET", f"/api/v1/jobs/{jid}/pareto"),
    ]:
        r = other_api.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "not_found" and r.json()["instance"] == path
    assert other_api.get("/api/v1/jobs").json()["items"] == []
    assert api.get("/api/v1/jobs/not-a-uuid").status_code == 422
