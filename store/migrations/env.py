"""Alembic environment: runs on the engine that store.migrate hands over (never from a .ini)."""

from alembic import context
from sqlmodel import SQLModel

from store import schema  # noqa: F401  (registers every table on SQLModel.metadata)

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
