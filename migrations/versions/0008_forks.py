"""forks: lineage on jobs, and every checkpoint kept as a keyframe

jobs.parent_id / forked_at_epoch / root_id say which job a fork continues, from which epoch,
and the root of its tree (NULL for a job that is not a fork). checkpoints keeps every state a
worker wrote, keyed (job_id, epoch) instead of one row per job, so that the state after any
stored epoch can be rebuilt: the nearest checkpoint at or before it, plus a deterministic replay
(worker/forks.py). Downgrading keeps each job's latest checkpoint.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("forked_at_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("root_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_parent_id_jobs"), "jobs", ["parent_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_jobs_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_root_id"), ["root_id"], unique=False)
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.drop_constraint("pk_checkpoints", type_="primary")
        batch_op.create_primary_key("pk_checkpoints", ["job_id", "epoch"])


def downgrade() -> None:
    """Downgrade schema: each job's latest checkpoint stays."""
    op.execute(
        "DELETE FROM checkpoints WHERE epoch < "
        "(SELECT max(c.epoch) FROM checkpoints c WHERE c.job_id = checkpoints.job_id)"
    )
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.drop_constraint("pk_checkpoints", type_="primary")
        batch_op.create_primary_key("pk_checkpoints", ["job_id"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_root_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_parent_id"))
        batch_op.drop_constraint(batch_op.f("fk_jobs_parent_id_jobs"), type_="foreignkey")
        batch_op.drop_column("root_id")
        batch_op.drop_column("forked_at_epoch")
        batch_op.drop_column("parent_id")
