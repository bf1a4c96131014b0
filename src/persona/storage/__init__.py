"""Storage: narrow interfaces per need, with SQLite and PostgreSQL implementations."""
