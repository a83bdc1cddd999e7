"""Property-based run over the whole OpenAPI schema (schemathesis, in-process over ASGI) with a
valid key, against a private PostgreSQL database: no request may produce a 5xx, and every answer
must conform to the documented status codes, content types, headers and schemas.

Hostile inputs with known shapes (oversized uploads, zip bombs, traversal, cross-key access)
have their own explicit tests next to the endpoints; this one looks for what nobody thought of.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.fuzz_openapi import fuzz_app
from nas_service.db import Database
from nas_service.settings import Settings
from tests.pg import new_key, private_database


@pytest.fixture(scope="module")
def fuzz_db() -> Iterator[Database]:
    with private_database("fuzz") as db:
        yield db


@pytest.fixture(scope="module")
def fuzz_key(fuzz_db: Database) -> str:
    return new_key(fuzz_db, "fuzz")[1]


@pytest.fixture(scope="module")
def app(fuzz_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from nas_service.cli_serve import build_app

    app_settings = Settings(
        database_url=fuzz_db.url,
        data_dir=tmp_path_factory.mktemp("fuzz-data"),
        max_upload_bytes=256 * 1024,
    )
    return build_app(app_settings)


def test_no_server_error_and_no_schema_violation(app: Any, fuzz_key: str) -> None:
    summary = fuzz_app(app, fuzz_key, positive=25, negative=15)
    assert len(summary["operations"]) >= 15, summary["operations"]
    assert summary["cases"] >= 15 * len(summary["operations"])
    assert summary["server_errors"] == 0, summary["status_codes"]
    assert not summary["failures"], "\n\n".join(summary["failures"])
