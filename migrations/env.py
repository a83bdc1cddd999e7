"""Alembic environment. Never imports the app models: migrations describe the schema on their
own, and ``tests/db`` checks they match the models.

The URL comes from (in order) a connection passed in ``config.attributes["connection"]``, the
``sqlalchemy.url`` option, or ``Settings()`` (``NAS_DATABASE_URL``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, pool

config = context.config


def _url() -> str:
    # get_section tolerates a missing alembic.ini (the CLI reads pyproject.toml only).
    url = config.get_section(config.config_ini_section, {}).get("sqlalchemy.url")
    if url:
        return url
    from nas_service.settings import Settings

    return Settings().database_url


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite can only alter tables by copying them.
    context.configure(
        connection=connection,
        target_metadata=None,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=None, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    from nas_service.db.engine import make_engine  # creates a SQLite file's folder

    engine = make_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
