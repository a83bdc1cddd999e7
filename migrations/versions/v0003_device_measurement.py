"""Devices say how their latency is measured (warm-up and timed runs, clock, runtime, pairing
with a reference network), and the built-in ``cpu-stable`` device is seeded.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
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
    sa.column("warmup", sa.Integer),
    sa.column("repeats", sa.Integer),
    sa.column("clock", sa.String),
    sa.column("runtime", sa.String),
    sa.column("paired", sa.Boolean),
)


def upgrade() -> None:
    # Batch mode: SQLite (the embedded store) cannot add a CHECK constraint in place.
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("warmup", sa.Integer(), nullable=False, server_default="10"))
        batch.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="50"))
        batch.add_column(sa.Column("clock", sa.String(8), nullable=False, server_default="wall"))
        batch.add_column(
            sa.Column("runtime", sa.String(16), nullable=False, server_default="eager")
        )
        batch.add_column(
            sa.Column("paired", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_check_constraint("ck_devices_clock", "clock IN ('wall','cpu')")
        batch.create_check_constraint("ck_devices_runtime", "runtime IN ('eager','torchscript')")
    op.bulk_insert(
        devices,
        [
            {
                "name": "cpu-stable",
                "torch_device": "cpu",
                "threads": 1,
                "batch_size": 1,
                "ray_resource": None,
                "description": (
                    "Any Ray node's CPU, one thread, batch size 1: the exported TorchScript "
                    "network, frozen, on the thread's CPU clock, every run paired with a "
                    "reference network of the space (speed-normalised, repeatable on a shared "
                    "machine)"
                ),
                "warmup": 3,
                "repeats": 8,
                "clock": "cpu",
                "runtime": "torchscript",
                "paired": True,
            }
        ],
    )


def downgrade() -> None:
    op.execute(devices.delete().where(devices.c.name == "cpu-stable"))
    with op.batch_alter_table("devices") as batch:
        batch.drop_constraint("ck_devices_runtime", type_="check")
        batch.drop_constraint("ck_devices_clock", type_="check")
        for column in ("paired", "runtime", "clock", "repeats", "warmup"):
            batch.drop_column(column)
