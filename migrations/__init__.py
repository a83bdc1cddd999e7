"""Alembic migrations (script_location in pyproject's [tool.alembic])."""
