"""Store tests run against a real PostgreSQL (see tests/pg.py)."""

from tests.pg import db, pg_url  # noqa: F401
