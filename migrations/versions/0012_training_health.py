"""Training health: per-layer update ratios, dead and saturated fractions, mean and max |δ^l|,
and a non-finite flag in each epoch chunk (NULL in the chunks written before); a job's health
alerts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIELDS = ("update_ratio_weights", "update_ratio_biases", "dead_fraction", "saturated_fraction",
          "delta_mean", "delta_max", "nonfinite")  # fmt: skip


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("epoch_chunks", schema=None) as batch_op:
        for name in FIELDS:
            batch_op.add_column(sa.Column(name, sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("health", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("health")
    with op.batch_alter_table("epoch_chunks", schema=None) as batch_op:
        for name in reversed(FIELDS):
            batch_op.drop_column(name)
