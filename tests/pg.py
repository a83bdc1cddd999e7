"""PostgreSQL helpers and fixtures shared by every test folder that needs the store.

Usage in a folder's conftest.py::

    from tests.pg import db, pg_url  # noqa: F401  (fixtures)

The URL comes from ``NAS_TEST_DATABASE_URL`` (default: postgres on 127.0.0.1, database
``nas_test``). Each test process works in its own database, ``<name>_p<pid>``, created and
migrated once per session and dropped at the end, so parallel test runs on one server never see
each other's rows. The ``db`` fixture empties every table after a test and restores the devices
the migrations seed (``cpu``, ``cpu-stable``).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nas_service.db import Database
from nas_service.db.keys import create_key
from nas_service.db.migrate import upgrade
from nas_service.db.models import Base, Device

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/nas_test"
# Children first, so foreign keys never block a delete: derived from the models, so a new
# table is cleaned without anyone remembering to list it.
TABLES = tuple(t.name for t in reversed(Base.metadata.sorted_tables))
_state: dict[str, Database] = {}
_seeded_devices: list[dict[str, object]] = []


def base_url() -> str:
    return os.environ.get("NAS_TEST_DATABASE_URL", DEFAULT_URL)


def _admin_engine(url: str):  # type: ignore[no-untyped-def]
    admin = make_url(url).set(database="postgres")
    return create_engine(admin, isolation_level="AUTOCOMMIT")


def create_database(url: str) -> None:
    """Create the URL's database if it does not exist (needs CREATEDB on the server)."""
    name = make_url(url).database
    eng = _admin_engine(url)
    with eng.connect() as c:
        found = c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if found.first() is None:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()


def drop_database(url: str) -> None:
    name = make_url(url).database
    eng = _admin_engine(url)
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


def scratch_url(suffix: str) -> str:
    """A URL for a database private to this process: ``<base>_<suffix>_p<pid>``."""
    url = make_url(base_url())
    name = f"{url.database}_{suffix}_p{os.getpid()}"
    return url.set(database=name).render_as_string(hide_password=False)


def _migrated(url: str) -> Database:
    drop_database(url)
    create_database(url)
    db = Database(url)
    upgrade(db.engine)
    if not _seeded_devices:
        with db.engine.connect() as c:
            _seeded_devices.extend(dict(r._mapping) for r in c.execute(Device.__table__.select()))
    return db


@contextmanager
def private_database(suffix: str) -> Iterator[Database]:
    """A migrated PostgreSQL database of this process, dropped afterwards."""
    url = scratch_url(suffix)
    db = _migrated(url)
    try:
        yield db
    finally:
        db.dispose()
        drop_database(url)


def session_database() -> Database:
    """This process's migrated database (created once, dropped at exit)."""
    if "db" not in _state:
        url = scratch_url("s")
        db = _migrated(url)
        _state["db"] = db

        def _drop() -> None:
            db.dispose()
            drop_database(url)

        atexit.register(_drop)
    return _state["db"]


def clean(db: Database) -> None:
    # DELETE, not TRUNCATE: TRUNCATE swaps files on disk and costs ~0.4 s per call here,
    # DELETE on a few rows ~10 ms. Ids are not reset; tests never rely on their values.
    with db.engine.begin() as c:
        for table in TABLES:  # children first, so foreign keys never block a delete
            c.execute(text(f"DELETE FROM {table}"))
        c.execute(Device.__table__.insert(), _seeded_devices)


def new_key(db: Database, name: str) -> tuple[int, str]:
    """(key id, plaintext key)."""
    with db.transaction() as s:
        row, key = create_key(s, name)
        return row.id, key


@pytest.fixture(scope="session")
def pg_url() -> str:
    return session_database().url


@pytest.fixture
def db() -> Iterator[Database]:
    """The migrated session database; every table is emptied after the test."""
    database = session_database()
    try:
        yield database
    finally:
        clean(database)
