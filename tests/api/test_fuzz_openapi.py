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
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from nas_service.db import Database
from nas_service.db.migrate import upgrade
from nas_service.settings import Settings
from tests.pg import create_database, drop_database, new_key, scratch_url

CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_db() -> Iterator[Database]:
    url = scratch_url("fuzz")
    drop_database(url)
    create_database(url)
    db = Database(url)
    upgrade(db.engine)
    try:
        yield db
    finally:
        db.dispose()
        drop_database(url)


@pytest.fixture(scope="module")
def fuzz_key(fuzz_db: Database) -> str:
    return new_key(fuzz_db, "fuzz")[1]


@pytest.fixture(scope="module")
def api_schema(fuzz_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from nas_service.cli_serve import build_app

    app_settings = Settings(
        database_url=fuzz_db.url,
        data_dir=tmp_path_factory.mktemp("fuzz-data"),
        max_upload_bytes=256 * 1024,
    )
    return schemathesis.openapi.from_asgi("/openapi.json", build_app(app_settings))


def fuzz_operation(operation: Any, key: str, mode: GenerationMode, examples: int) -> str | None:
    """Run ``examples`` generated cases against one operation; the first failure, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        return None  # nothing to vary (no parameters, so no invalid request to build)
    except (Exception, BaseExceptionGroup) as e:  # schemathesis' FailureGroup is a Base one
        return f"{operation.label} [{mode.value}]: {type(e).__name__}: {_describe(e)[:1500]}"
    return None


def _describe(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(_describe(x) for x in e.exceptions)
    return str(e)


def test_no_server_error_and_no_schema_violation(api_schema: Any, fuzz_key: str) -> None:
    operations = [r.ok() for r in api_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    failures = []
    for op in operations:
        for mode, examples in ((GenerationMode.POSITIVE, 25), (GenerationMode.NEGATIVE, 15)):
            failure = fuzz_operation(op, fuzz_key, mode, examples)
            if failure:
                failures.append(failure)
    assert not failures, "\n\n".join(failures)
