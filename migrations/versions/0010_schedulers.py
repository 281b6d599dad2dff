"""Schedulers: the paused and stopped statuses, a batch's scheduler, its rungs and decisions

A batch made before is fifo (every trial trains every epoch), and its jobs are no trials.
Downgrading turns a paused trial back into a queued job (it resumes from its checkpoint and
trains to the end) and a stopped one into a cancelled one, before the statuses go.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("queued", "running", "succeeded", "failed", "cancelled")
AFTER = (*BEFORE, "paused", "stopped")


def _status_check(statuses: tuple[str, ...]) -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch_op.create_check_constraint("status", f"status IN {statuses}")


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scheduler", sa.JSON(), server_default='{"name": "fifo"}', nullable=False)
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trial", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("stop_at", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
    _status_check(AFTER)
    op.create_table(
        "rungs",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("rung", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("bracket", sa.Integer(), nullable=False),
        sa.Column("trial", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_rungs_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_rungs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "rung", name=op.f("pk_rungs")),
    )
    op.create_index("ix_rungs_batch_id_bracket_rung", "rungs", ["batch_id", "bracket", "rung"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("trial", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("rung", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_decisions_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_decisions_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )  # fmt: skip
    op.create_index("ix_decisions_batch_id_id", "decisions", ["batch_id", "id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_decisions_batch_id_id", table_name="decisions")
    op.drop_table("decisions")
    op.drop_index("ix_rungs_batch_id_bracket_rung", table_name="rungs")
    op.drop_table("rungs")
    op.execute("UPDATE jobs SET status = 'queued', published_at = NULL WHERE status = 'paused'")
    op.execute("UPDATE jobs SET status = 'cancelled' WHERE status = 'stopped'")
    _status_check(BEFORE)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("reason")
        batch_op.drop_column("stop_at")
        batch_op.drop_column("trial")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("scheduler")
