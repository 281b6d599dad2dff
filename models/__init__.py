"""deltaflow's persisted data: SQLAlchemy 2 tables (tables.py), engines and sessions (db.py),
array codecs (arrays.py), bulk driver-level I/O (bulk.py), migrations run from code
(migrate.py). Import from the submodules: this package imports nothing itself, so a client
that needs only the job statuses (status.py) does not load SQLAlchemy."""
