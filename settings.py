"""Every knob of deltaflow, read from DELTAFLOW_* environment variables (DESIGN §7).

Nothing here connects to anything: entry points (the FastAPI lifespan, the Celery worker's
process init, CLI commands) build engines and connections from a Settings object.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DELTAFLOW_", extra="ignore")

    database_url: str = Field(
        "sqlite:///var/deltaflow.db",
        description="SQLAlchemy URL; the default is a SQLite file under ./var/.",
    )
    broker_url: str | None = Field(
        None,
        description="Celery broker (redis://…); unset means the embedded SQLite broker, kept "
        "beside a SQLite database or under ./var/.",
    )
    flush_interval: float = Field(1.0, gt=0, description="Seconds between a worker's writes.")
    checkpoint_interval: float = Field(
        10.0,
        ge=0,
        description="Seconds between a running job's checkpoints (also written when a run "
        "ends); a resumed job replays at most this much training. 0: at every flush.",
    )
    lease_ttl: float = Field(60.0, gt=0, description="Seconds a claim on a job lasts unrenewed.")
    max_attempts: int = Field(3, ge=1, description="Claims of one job before it fails.")
    reaper_interval: float = Field(5.0, gt=0, description="Seconds between reaper passes.")
    republish_after: float = Field(
        30.0,
        gt=0,
        description="Seconds the broker must have missed messages, and since a queued job's "
        "publish, before the reaper publishes it again.",
    )
    blas_threads: int = Field(1, ge=1, description="BLAS threads per worker process.")
    max_grid_points: int = Field(1000, ge=1, description="Jobs one batch may create.")
    max_request_bytes: int = Field(32 << 20, ge=1024, description="Largest request body (413).")
    max_upload_bytes: int = Field(
        1 << 30,
        ge=1024,
        description="Largest body of a binary data-set upload (npz, Parquet), which is spooled "
        "to a temporary file rather than held in memory (413).",
    )
    max_epochs: int = Field(1_000_000, ge=1, description="Epochs one job may ask for.")
    max_layers: int = Field(100, ge=1, description="Layers with parameters in one network.")
    max_parameters: int = Field(10_000_000, ge=1, description="Weights and biases of a network.")
    max_data_values: int = Field(
        50_000_000, ge=1, description="Samples × features of one job's data set."
    )
    broker_visibility_timeout: float = Field(
        12 * 3600, gt=0, description="Seconds Redis waits for an ack before redelivering."
    )
    fault_hooks: bool = Field(
        False,
        description="Test hooks for fault injection: a job tagged deltaflow.fault=kill:<epoch> "
        "kills its worker there; never set in production.",
    )
    fault_drop_publish: bool = Field(
        False,
        description="Test hook: the API commits jobs but does not publish them, as if it crashed "
        "between the two; the reaper must publish them. Never set in production.",
    )
    data_cache_mb: int = Field(
        1024, ge=0, description="MiB of decoded data sets a worker process keeps between jobs."
    )
    auth: Literal["required", "off"] = Field(
        "off",
        description="required: every /v1 request needs `Authorization: Bearer KEY`; off: one "
        "local user, and `deltaflow up` listens on 127.0.0.1 only.",
    )
    bootstrap_key: SecretStr | None = Field(
        None,
        description="An admin API key accepted while this is set, so the first keys can be "
        "created; at least 32 characters. It is never stored: unset it to retire it.",
        min_length=32,
    )
    bootstrap_owner: str = Field(
        "default", max_length=64, description="The owner the bootstrap key acts for."
    )
    docs: Literal["open", "off"] = Field(
        "open", description="/docs, /redoc and /openapi.json: served to anyone, or not at all."
    )
    metrics: Literal["open", "key", "off"] = Field(
        "open", description="/metrics: open, behind any valid API key, or not served."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="json: one JSON object per log line, with job id and attempt."
    )

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url

    home: Path | None = Field(
        None,
        description="Where embedded files live (the broker's SQLite file, logs); default: "
        "beside a SQLite database, else ./var.",
    )

    @property
    def var_dir(self) -> Path:
        if self.home is not None:
            return self.home
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and ":memory:" not in self.database_url:
            return Path(self.database_url[len(prefix) :]).parent
        return Path("var")

    @property
    def broker_file(self) -> Path:
        return self.var_dir / "broker.sqlite"


@lru_cache
def get_settings() -> Settings:
    return Settings()
