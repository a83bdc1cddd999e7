"""API tests: a real PostgreSQL (tests/pg.py) behind the FastAPI app (tests/api/client.py)."""

from tests.api.client import api, app_settings, other_api  # noqa: F401
from tests.pg import db, pg_url  # noqa: F401
