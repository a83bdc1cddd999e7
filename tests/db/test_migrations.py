"""Migrations and models agree, and every migration upgrades and downgrades."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text

from nas_service.db.migrate import alembic_config, current_revision, downgrade, is_at_head, upgrade
from nas_service.db.models import Base
from tests.pg import create_database, drop_database, scratch_url


@pytest.fixture(scope="module")
def _scratch() -> Iterator[Engine]:
    # One database for the module: creating and dropping one costs seconds (checkpoints).
    url = scratch_url("mig")
    drop_database(url)
    create_database(url)
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_database(url)


@pytest.fixture
def scratch_engine(_scratch: Engine) -> Iterator[Engine]:
    downgrade(_scratch, "base")
    yield _scratch
    downgrade(_scratch, "base")


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def test_models_match_migrations_at_head(scratch_engine: Engine) -> None:
    upgrade(scratch_engine)
    assert is_at_head(scratch_engine)
    assert _diff(scratch_engine) == []


def test_every_migration_upgrades_and_downgrades(scratch_engine: Engine) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions[:3] == ["0001", "0002", "0003"]
    for rev in revisions:
        upgrade(scratch_engine, rev)
        assert current_revision(scratch_engine) == rev
    tables = set(inspect(scratch_engine).get_table_names())
    assert {"jobs", "candidates", "artifacts", "api_keys", "devices"} <= tables
    with scratch_engine.connect() as c:
        names = c.execute(text("SELECT name FROM devices ORDER BY name")).scalars().all()
        assert names == ["cpu", "cpu-stable"]
    for rev in reversed(revisions):
        down_to = script.get_revision(rev).down_revision or "base"
        downgrade(scratch_engine, str(down_to))
        assert current_revision(scratch_engine) == (None if down_to == "base" else down_to)
    assert set(inspect(scratch_engine).get_table_names()) <= {"alembic_version"}
    # And back up again: downgrades leave nothing behind that blocks a new upgrade.
    upgrade(scratch_engine)
    assert _diff(scratch_engine) == []


def test_sqlite_upgrade_matches_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    upgrade(engine)
    assert _diff(engine) == []
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
