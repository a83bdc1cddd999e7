"""Dialect-specific statements shared by the repositories."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing/update`` on PostgreSQL and SQLite."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect '{name}' (PostgreSQL or SQLite)")


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
