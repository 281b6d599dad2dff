"""`python -m worker.bootstrap`: what must happen once before the service starts — the database
brought to the latest migration, and the embedded broker's file and queue prepared. A database
it cannot use (missing, not answering, another application's, a newer deltaflow's) ends it
with one sentence on stderr and exit status 1, which `deltaflow up` shows as its error line."""

from __future__ import annotations

from models.schema import DatabaseProblem, migrate_database
from settings import get_settings
from worker.celery_app import make_celery, prepare_broker


def main() -> None:
    settings = get_settings()
    try:
        migrate_database(settings.database_url)
    except DatabaseProblem as exc:
        raise SystemExit(str(exc)) from None
    prepare_broker(make_celery(settings), settings)


if __name__ == "__main__":
    main()
