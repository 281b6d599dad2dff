"""Tables as earlier revisions had them, for migration tests that fill a database at an old
revision (the models describe the latest only)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

DATASETS = sa.table(
    "datasets", sa.column("id", sa.Uuid()), sa.column("owner"), sa.column("name"),
    sa.column("sha256"), sa.column("n_samples"), sa.column("n_features"),
    sa.column("n_outputs"), sa.column("x", sa.LargeBinary()), sa.column("y", sa.LargeBinary()),
    sa.column("created_at", sa.DateTime()),
)  # fmt: skip  # before 0011: x and y as blob columns


def dataset(conn: sa.Connection, x: bytes = b"\0" * 8, y: bytes = b"\0" * 8,
            shape: tuple[int, int, int] = (1, 1, 1)) -> uuid.UUID:  # fmt: skip
    """A data set row as revisions before 0011 stored it; its id."""
    dataset_id = uuid.uuid4()
    n, features, outputs = shape
    conn.execute(sa.insert(DATASETS).values(
        id=dataset_id, owner="o", name="d", sha256=dataset_id.hex * 2, n_samples=n,
        n_features=features, n_outputs=outputs, x=x, y=y, created_at=sa.func.now()))  # fmt: skip
    return dataset_id
