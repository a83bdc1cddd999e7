"""Seed the built-in ``cpu`` device so a fresh install can run jobs at once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

devices = sa.table(
    "devices",
    sa.column("name", sa.String),
    sa.column("torch_device", sa.String),
    sa.column("threads", sa.Integer),
    sa.column("batch_size", sa.Integer),
    sa.column("ray_resource", sa.String),
    sa.column("description", sa.Text),
)


def upgrade() -> None:
    op.bulk_insert(
        devices,
        [
            {
                "name": "cpu",
                "torch_device": "cpu",
                "threads": 1,
                "batch_size": 1,
                "ray_resource": None,
                "description": "Any Ray node's CPU, one thread, batch size 1",
            }
        ],
    )


def downgrade() -> None:
    op.execute(devices.delete().where(devices.c.name == "cpu"))
