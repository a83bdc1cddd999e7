"""A dataset's format is catalog vocabulary: checked at upload against the registered formats,
not by a CHECK listing them (which made every new format a migration).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_constraint("ck_datasets_format", type_="check")


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.create_check_constraint("ck_datasets_format", "format IN ('npz','image-folder')")
