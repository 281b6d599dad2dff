"""Alembic environment: metadata from models, URL from settings (or the caller)."""

from logging.config import fileConfig

from alembic import context

from models import trials  # noqa: F401  (its tables, on the same metadata)
from models.base import UtcDateTime
from models.db import make_engine
from models.tables import Base  # the tables, registered on its metadata
from settings import get_settings

config = context.config
# Only a developer's `alembic` command reads alembic.ini (and its logging); deltaflow's own
# Config (models/migrate.py) has no file, and leaves the logging of its process alone.
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def _render_item(type_, obj, autogen_context):
    """Migrations stay free of deltaflow's own types: UtcDateTime is a DateTime(timezone=True)."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    url = config.attributes.get("url") or get_settings().database_url
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch migrations copy and drop tables; with foreign keys on, dropping `jobs`
            # would cascade into its checkpoints and tags. The pragma only works outside a
            # transaction, so it goes to the driver before SQLAlchemy begins one.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
