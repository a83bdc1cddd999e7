"""API test fixtures: the app on the session's PostgreSQL database, with two keys.

Reusable from other folders: ``from tests.api.client import api, other_api, app_settings``
(plus ``db`` and ``pg_url`` from ``tests.pg``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nas_service.api import create_app
from nas_service.db import Database
from nas_service.settings import Settings
from tests.pg import new_key


def make_settings(url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": url,
        "data_dir": data_dir,
        "max_upload_bytes": 2 * 1024 * 1024,
        "max_uncompressed_bytes": 8 * 1024 * 1024,
        "max_budget": 1000,
        "max_epochs_scale": 4.0,
        "max_jobs_per_key_running": 5,
        # Functional tests read their own writes at once; test_poll_cache.py covers the caches.
        "auth_cache_s": 0.0,
        "poll_cache_s": 0.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Api(TestClient):
    """A TestClient that sends one key's Authorization header."""

    owner_id: int
    key: str


def client_for(settings: Settings, db: Database, name: str) -> Api:
    owner, key = new_key(db, name)
    c = Api(create_app(settings, db=db), headers={"Authorization": f"Bearer {key}"})
    c.owner_id, c.key = owner, key
    return c


@pytest.fixture
def app_settings(db: Database, tmp_path: Path) -> Settings:
    return make_settings(db.url, tmp_path / "data")


@pytest.fixture
def api(app_settings: Settings, db: Database) -> Iterator[Api]:
    with client_for(app_settings, db, "alice") as c:
        yield c


@pytest.fixture
def other_api(app_settings: Settings, db: Database) -> Iterator[Api]:
    with client_for(app_settings, db, "mallory") as c:
        yield c
