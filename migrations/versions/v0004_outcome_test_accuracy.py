"""A finished job says what it found (``jobs.outcome``: a front, or no feasible subnet and why),
and each candidate keeps its held-out accuracy (``candidates.test_accuracy``: measured on the
test split, which neither trains the supernet nor selects the front). Liveness: ``jobs.progress_at``
is when the runner last reported progress (the dispatcher's heartbeat does not move it), and a
queued job can no longer carry a cancel request (CHECK ``no_cancel_when_queued``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same JSON type as the models' JsonType: JSONB on PostgreSQL, JSON elsewhere.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


jobs = sa.table(
    "jobs",
    sa.column("status", sa.String),
    sa.column("cancel_requested", sa.Boolean),
)


def upgrade() -> None:
    # A queued job with a cancel request (left by a requeue) was cancelled in all but name.
    op.execute(
        jobs.update()
        .where(jobs.c.status == "queued", jobs.c.cancel_requested.is_(True))
        .values(status="cancelled", cancel_requested=False)
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("outcome", _JSON, nullable=True))
        batch.add_column(sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(
            "ck_jobs_no_cancel_when_queued", "NOT (status = 'queued' AND cancel_requested)"
        )
    with op.batch_alter_table("candidates") as batch:
        batch.add_column(sa.Column("test_accuracy", sa.Float(), nullable=True))
    # Never written or read: latency tables live as files in each job's cache folder.
    op.drop_table("latency_tables")


def downgrade() -> None:
    op.create_table(
        "latency_tables",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("space_hash", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device"],
            ["devices.name"],
            name="fk_latency_tables_device_devices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_latency_tables"),
        sa.UniqueConstraint("device", "space_hash", name="uq_latency_tables_device_space_hash"),
    )
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("test_accuracy")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("ck_jobs_no_cancel_when_queued", type_="check")
        batch.drop_column("progress_at")
        batch.drop_column("outcome")
