"""Alembic migrations of the lab store (run through store.migrate, never by hand)."""
