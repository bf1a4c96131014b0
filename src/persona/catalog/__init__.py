"""Catalog: items, their attributes and availability."""
