"""deltaflow's persisted data: SQLAlchemy 2 tables, engine and session factories, array codecs."""

from models.base import Base, utcnow
from models.db import make_engine, session_factory
from models.tables import (
    DEFAULT_OWNER,
    JOB_STATUSES,
    TERMINAL_STATUSES,
    ApiKey,
    Batch,
    Checkpoint,
    Dataset,
    Epoch,
    Job,
    JobAttempt,
    JobTag,
    ProcessMetrics,
    Snapshot,
    add_counters,
)

__all__ = [
    "DEFAULT_OWNER",
    "JOB_STATUSES",
    "TERMINAL_STATUSES",
    "ApiKey",
    "Base",
    "Batch",
    "Checkpoint",
    "Dataset",
    "Epoch",
    "Job",
    "JobAttempt",
    "JobTag",
    "ProcessMetrics",
    "Snapshot",
    "add_counters",
    "make_engine",
    "session_factory",
    "utcnow",
]
