"""The states a job can be in (DESIGN §5). models/lifecycle.py owns every move between them.

Standard library only: the CLI, which speaks HTTP and imports nothing else of the server's,
reads statuses from here too.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A job's status; the value is what the database, the HTTP API and the CLI say."""

    QUEUED = "queued"  # waiting for a worker (new, released, requeued or retried)
    RUNNING = "running"  # a worker holds its lease
    SUCCEEDED = "succeeded"  # trained every epoch (or stopped early by its own rule)
    FAILED = "failed"  # bad data, divergence, or no attempts left
    CANCELLED = "cancelled"  # a user asked it to stop
    PAUSED = "paused"  # a batch trial at a rung: its state stored, no worker held (tune/)
    STOPPED = "stopped"  # ended by its batch's scheduler: not a failure; `reason` says why

    @property
    def terminal(self) -> bool:
        """Whether the job has ended: no worker will touch it unless it is retried."""
        return self in TERMINAL


TERMINAL = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.STOPPED}
)
