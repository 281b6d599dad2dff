"""The revisions, one module each; a package so that every installation ships them (Alembic
itself reads them as files, and skips this one)."""
