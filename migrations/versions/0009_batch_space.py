"""batches.space / num_samples / seed: sampled search spaces next to the grid

A batch made before has no space, one sample and seed 0: its points are its grid's, as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("space", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(
            sa.Column("num_samples", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(sa.Column("seed", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("seed")
        batch_op.drop_column("num_samples")
        batch_op.drop_column("space")
