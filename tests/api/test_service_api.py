"""Auth, health and readiness, catalogue endpoints, OpenAPI, the SQLite quick-start path, and
the admin command."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nas_service.admin import main as admin
from nas_service.api import create_app
from nas_service.db import Database
from nas_service.db.migrate import head_revision, upgrade
from nas_service.services.keys import create_key
from nas_service.settings import Settings, derive_optuna_storage
from tests.api.client import Api, make_settings
from tests.api.specs import spec
from tests.pg import drop_database


def test_auth_is_required_and_checked(api: Api, db: Database) -> None:
    app = api.app
    anon = TestClient(app)
    for headers, needle in [
        ({}, "missing Authorization header"),
        ({"Authorization": "Basic abc"}, "Bearer"),
        ({"Authorization": "Bearer nas_wrong"}, "unknown or revoked"),
    ]:
        r = anon.get("/api/v1/jobs", headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized", headers
        assert needle in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    assert anon.get("/api/v1/devices").status_code == 401
    assert api.get("/api/v1/devices").status_code == 200
    assert admin(["revoke-key", "--name", "alice"], make_settings(db.url, Path("."))) == 0
    assert api.get("/api/v1/devices").status_code == 401


def test_health_ready_docs_need_no_key(api: Api) -> None:
    anon = TestClient(api.app)
    assert anon.get("/api/v1/healthz").json() == {
        "status": "ok",
        "database": None,
        "revision": None,
        "head": None,
    }
    ready = anon.get("/readyz").json()
    assert (ready["status"], ready["database"], ready["revision"]) == (
        "ready",
        "postgresql",
        head_revision(),
    )
    schema = anon.get("/openapi.json").json()
    assert "/api/v1/jobs/{job_id}/pareto" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert anon.get("/docs").status_code == 200
    missing = anon.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_readyz_reports_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    r = TestClient(create_app(settings)).get("/api/v1/readyz")
    assert r.status_code == 503 and r.json()["code"] == "not_ready"
    assert f"database at migration None, code expects {head_revision()}" in r.json()["detail"]


def test_catalogue(api: Api) -> None:
    spaces = {s["id"]: s for s in api.get("/api/v1/search-spaces").json()["items"]}
    assert {"mbv3", "mlp"} <= set(spaces)
    mbv3 = spaces["mbv3"]
    assert mbv3["dims_by_kind"]["kernel"] == {"count": 20, "choices": [3, 5, 7]}
    assert mbv3["flops_range"][0] < mbv3["flops_range"][1]
    assert int(mbv3["size"]) > 2**53
    devices = api.get("/api/v1/devices").json()["items"]
    assert [d["name"] for d in devices] == ["cpu", "cpu-stable"]
    assert devices[0] == {
        "name": "cpu",
        "torch_device": "cpu",
        "threads": 1,
        "batch_size": 1,
        "ray_resource": None,
        "description": "Any Ray node's CPU, one thread, batch size 1",
        "warmup": 10,
        "repeats": 50,
        "clock": "wall",
        "runtime": "eager",
        "paired": False,
    }
    stable = devices[1]
    assert (stable["clock"], stable["runtime"], stable["paired"]) == ("cpu", "torchscript", True)
    assert (stable["warmup"], stable["repeats"], stable["threads"]) == (3, 8, 1)


def test_sqlite_quick_start(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "var")  # type: ignore[call-arg]
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'nas.sqlite'}"
    assert settings.optuna_storage == f"sqlite:///{tmp_path / 'var' / 'optuna.sqlite'}"
    app = create_app(settings)
    upgrade(app.state.db.engine)
    _, key = create_key(app.state.db, "local")
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as c:
        r = c.post("/api/v1/jobs", json=spec())
        assert r.status_code == 201, r.text
        job = c.get(r.headers["location"]).json()
        assert (job["status"], job["spec"]["seed"]) == ("queued", 1)
        assert job["created_at"].endswith("Z") or "+00:00" in job["created_at"]
        assert [j["id"] for j in c.get("/api/v1/jobs").json()["items"]] == [job["id"]]
        assert c.get(f"/api/v1/jobs/{job['id']}/pareto").json()["front"] == []
    app.state.db.dispose()


def test_optuna_storage_never_shares_our_database() -> None:
    url = "postgresql+psycopg://u:p%40ss@db:5432/nas"
    assert (
        derive_optuna_storage(url, Path("var"))
        == "postgresql+psycopg://u:p%40ss@db:5432/nas_optuna"
    )


def test_admin_commands(db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(db.url, Path("."))
    assert admin(["create-key", "--name", "ops"], settings) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("nas_") and len(key) > 40
    assert admin(["create-key", "--name", "ops"], settings) == 1
    assert "exists already" in capsys.readouterr().err
    assert admin(["list-keys"], settings) == 0
    listing = capsys.readouterr().out
    assert listing.startswith(f"ops\t{key[:10]}...") and key not in listing
    assert admin(["revoke-key", "--name", "ops"], settings) == 0
    assert admin(["revoke-key", "--name", "ops"], settings) == 1
    assert "no active key named 'ops'" in capsys.readouterr().err
    try:
        assert admin(["migrate"], settings) == 0
        assert "created the Optuna storage database" in capsys.readouterr().err
        assert admin(["migrate"], settings) == 0  # idempotent
        assert "created" not in capsys.readouterr().err
        with create_engine(settings.optuna_storage).connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar() == (
                make_url(db.url).database + "_optuna"
            )
    finally:
        drop_database(settings.optuna_storage)


def test_unstorable_values_are_422_not_500(api: Api) -> None:
    r = api.get("/api/v1/candidates/9223372036854775808/subnet")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "candidate_id"
    r = api.post("/api/v1/jobs", json=spec(name="nul\x00byte"))
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    jid = api.post("/api/v1/jobs", json=spec()).json()["id"]
    r = api.get(f"/api/v1/jobs/{jid}/candidates", params={"device": "a\x00b"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "request"
    r = api.get(f"/api/v1/jobs/{jid}/metrics", params={"after": 2**40})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "after"
