"""Migration 0008: lineage columns, and checkpoints keyed by (job, epoch) so that every one is
kept; downgrading keeps each job's latest. On both databases."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from models.db import make_engine
from models.migrate import downgrade, upgrade
from tests.models import before

JOBS = sa.table(
    "jobs", sa.column("id", sa.Uuid()), sa.column("owner"), sa.column("name"),
    sa.column("tags", sa.JSON()), sa.column("spec", sa.JSON()), sa.column("dataset_id", sa.Uuid()),
    sa.column("status"), sa.column("epochs_total"), sa.column("epochs_done"),
    sa.column("attempt"), sa.column("created_at", sa.DateTime()),
)  # fmt: skip
CHECKPOINTS = sa.table(
    "checkpoints", sa.column("job_id", sa.Uuid()), sa.column("epoch"),
    sa.column("meta", sa.JSON()), sa.column("arrays", sa.LargeBinary()),
    sa.column("updated_at", sa.DateTime()),
)  # fmt: skip


def _checkpoint(job_id: uuid.UUID, epoch: int) -> dict:
    return {"job_id": job_id, "epoch": epoch, "meta": {"e": epoch}, "arrays": b"x",
            "updated_at": sa.func.now()}  # fmt: skip


def test_0008_keeps_every_checkpoint_and_downgrades_to_the_latest(database_url):
    upgrade(database_url, "0007")
    engine = make_engine(database_url)
    job = uuid.uuid4()
    with engine.begin() as conn:
        data = before.dataset(conn)
        conn.execute(sa.insert(JOBS).values(
            id=job, owner="o", name="j", tags={}, spec={}, dataset_id=data, status="succeeded",
            epochs_total=9, epochs_done=9, attempt=1, created_at=sa.func.now()))  # fmt: skip
        conn.execute(sa.insert(CHECKPOINTS).values(_checkpoint(job, 4)))
    engine.dispose()

    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(CHECKPOINTS).values(_checkpoint(job, 9)))
        kept = conn.execute(sa.text("SELECT epoch FROM checkpoints ORDER BY epoch")).scalars()
        assert list(kept) == [4, 9]
        lineage = conn.execute(sa.text("SELECT parent_id, forked_at_epoch, root_id FROM jobs"))
        assert lineage.one() == (None, None, None)
    engine.dispose()

    downgrade(database_url, "0007")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert list(conn.execute(sa.text("SELECT epoch FROM checkpoints")).scalars()) == [9]
    engine.dispose()
