"""Ingest: event schema, validation, dedupe, quarantine and bulk import."""
