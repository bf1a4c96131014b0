"""SQLAlchemy Core implementation of the storage interfaces, for SQLite and PostgreSQL: one
module per store, ``storage`` for the unit of work and the storage that opens it."""

from persona.storage.sql.catalog import SqlCatalog
from persona.storage.sql.common import driver_connection, has_jsonb, json_text
from persona.storage.sql.events import SqlEventLog
from persona.storage.sql.keys import SqlKeyStore
from persona.storage.sql.profiles import SqlProfileStore
from persona.storage.sql.quarantine import SqlQuarantineLog
from persona.storage.sql.storage import SqlStorage, SqlUnitOfWork

__all__ = [
    "SqlCatalog",
    "SqlEventLog",
    "SqlKeyStore",
    "SqlProfileStore",
    "SqlQuarantineLog",
    "SqlStorage",
    "SqlUnitOfWork",
    "driver_connection",
    "has_jsonb",
    "json_text",
]
