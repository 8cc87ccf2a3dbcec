"""The store's exceptions: each message names the problem and the fix."""

from twin.errors import ChipTwinError


class StoreError(ChipTwinError, RuntimeError):
    """Root of every error the store raises for a user to act on."""


class BadDatabaseURL(StoreError, ValueError):
    """The database URL cannot be parsed or names an unsupported backend."""


class StoreUnreachable(StoreError):
    """The database server does not answer, or the file cannot be opened."""


class SchemaVersionError(StoreError):
    """The database schema is older (needs upgrade) or newer (needs newer code)."""


class InvalidReading(StoreError, ValueError):
    """A reading that cannot be stored as given (NaN, unknown channel, wrong unit)."""


class AuditError(StoreError):
    """The audit trail cannot be appended to or read."""
