"""The deltaflow Python client: submit jobs, follow them, and read their exact history as
numpy arrays and DataFrames.

    import deltaflow
    c = deltaflow.Client()                       # DELTAFLOW_URL, DELTAFLOW_KEY
    data = c.datasets.upload(x, y, name="digits")
    job = c.jobs.submit(spec, dataset=data).wait()
    job.history()                                # a pandas DataFrame, one row per epoch
"""

from deltaflow.batches import Batch
from deltaflow.client import Client
from deltaflow.errors import (
    APIError,
    AuthenticationError,
    DeltaflowError,
    JobFailed,
    NotFound,
    ServiceUnavailable,
)
from deltaflow.jobs import Job

__all__ = [
    "APIError",
    "AuthenticationError",
    "Batch",
    "Client",
    "DeltaflowError",
    "Job",
    "JobFailed",
    "NotFound",
    "ServiceUnavailable",
]
