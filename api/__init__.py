"""deltaflow's HTTP API (FastAPI): turns HTTP into rows, and publishes job ids by task name."""
