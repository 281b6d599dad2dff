"""batches, job tags, grid points and the indexes history queries use

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("base", sa.JSON(), nullable=False),
        sa.Column("grid", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_batches_owner_created_at_id", ["owner", "created_at", "id"], unique=False
        )

    op.create_table(
        "job_tags",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_tags_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "key", name=op.f("pk_job_tags")),
    )
    with op.batch_alter_table("job_tags", schema=None) as batch_op:
        batch_op.create_index("ix_job_tags_key_value", ["key", "value"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grid_point", sa.JSON(), nullable=True))
        batch_op.create_index(
            "ix_jobs_owner_final_loss_id", ["owner", "final_loss", "id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_batch_id_batches"), "batches", ["batch_id"], ["id"]
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_jobs_batch_id_batches"), type_="foreignkey")
        batch_op.drop_index("ix_jobs_owner_final_loss_id")
        batch_op.drop_column("grid_point")

    with op.batch_alter_table("job_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_job_tags_key_value")

    op.drop_table("job_tags")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index("ix_batches_owner_created_at_id")

    op.drop_table("batches")
