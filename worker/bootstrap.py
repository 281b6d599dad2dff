"""`python -m worker.bootstrap`: what must happen once before the service starts — the database
brought to the latest migration, and the embedded broker's file and queue prepared."""

from __future__ import annotations

from models.migrate import upgrade
from settings import get_settings
from worker.celery_app import make_celery, prepare_broker


def main() -> None:
    settings = get_settings()
    upgrade(settings.database_url)
    prepare_broker(make_celery(settings), settings)


if __name__ == "__main__":
    main()
