"""Reads that work on an engine (a connection of their own) or inside a caller's connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, Result


def read(source: Engine | Connection, query: Any) -> Result[Any]:
    """The result of ``query``, fully fetched when it ran on a connection of its own."""
    if isinstance(source, Connection):
        return source.execute(query)
    with source.connect() as connection:
        return connection.execute(query).freeze()()


def new_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT gave its row."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the insert returned no primary key")
    return int(key[0])
