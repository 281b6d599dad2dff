"""The worker side: the Celery app, thin tasks, the runner (claim → train → persist), the reaper."""
