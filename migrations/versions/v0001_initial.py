"""Initial schema: keys, devices, jobs, events, metrics, candidates, artifacts, datasets,
latency tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "devices",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("torch_device", sa.String(32), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("ray_resource", sa.String(64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_devices"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", BIGID, nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("space_id", sa.String(64), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(32), nullable=True),
        sa.Column("progress", JSON, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(128), nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("supernet_from", sa.Uuid(), nullable=True),
        sa.Column("run_dir", sa.Text(), nullable=True),
        sa.Column("checkpoint_uri", sa.Text(), nullable=True),
        sa.Column("pareto_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("pareto_history", JSON, nullable=False),
        sa.CheckConstraint(
            "status IN ('queued','running','succeeded','failed','cancelled')",
            name="ck_jobs_status",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["api_keys.id"], name="fk_jobs_owner_id_api_keys", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["supernet_from"], ["jobs.id"], name="fk_jobs_supernet_from_jobs", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_owner_created", "jobs", ["owner_id", "created_at", "id"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])
    op.create_table(
        "job_events",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_events_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
    )
    op.create_index("ix_job_events_job", "job_events", ["job_id", "id"])
    op.create_table(
        "train_metrics",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("phase", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_train_metrics_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_train_metrics"),
    )
    op.create_table(
        "candidates",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("arch", JSON, nullable=False),
        sa.Column("genotype", sa.Text(), nullable=False),
        sa.Column("arch_short", sa.Text(), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("flops", sa.BigInteger(), nullable=True),
        sa.Column("params", sa.BigInteger(), nullable=True),
        sa.Column("predicted_accuracy", sa.Float(), nullable=True),
        sa.Column("predicted_latency_ms", sa.Float(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("feasible", sa.Boolean(), nullable=False),
        sa.Column("is_pareto", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("objectives", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("source IN ('predicted','measured')", name="ck_candidates_source"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_candidates_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_candidates"),
        sa.UniqueConstraint(
            "job_id", "genotype", "device", name="uq_candidates_job_id_genotype_device"
        ),
    )
    op.create_index("ix_candidates_job_pareto", "candidates", ["job_id", "is_pareto"])
    op.create_table(
        "artifacts",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("owner_id", BIGID, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("candidate_id", BIGID, nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker_id", sa.String(128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('pending','ready','failed')", name="ck_artifacts_status"),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["api_keys.id"],
            name="fk_artifacts_owner_id_api_keys",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_artifacts_job_id_jobs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name="fk_artifacts_candidate_id_candidates",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.UniqueConstraint("candidate_id", "kind", name="uq_artifacts_candidate_id_kind"),
    )
    op.create_index("ix_artifacts_status_kind", "artifacts", ["status", "kind"])
    op.create_table(
        "datasets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", BIGID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("artifact_id", BIGID, nullable=False),
        sa.Column("info", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("format IN ('npz','image-folder')", name="ck_datasets_format"),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["api_keys.id"],
            name="fk_datasets_owner_id_api_keys",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name="fk_datasets_artifact_id_artifacts",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("owner_id", "name", name="uq_datasets_owner_id_name"),
    )
    op.create_table(
        "latency_tables",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("space_hash", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["device"],
            ["devices.name"],
            name="fk_latency_tables_device_devices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_latency_tables"),
        sa.UniqueConstraint("device", "space_hash", name="uq_latency_tables_device_space_hash"),
    )


def downgrade() -> None:
    for table in (
        "latency_tables",
        "datasets",
        "artifacts",
        "candidates",
        "train_metrics",
        "job_events",
        "jobs",
        "devices",
        "api_keys",
    ):
        op.drop_table(table)
