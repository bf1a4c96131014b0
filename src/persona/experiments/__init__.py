"""Experiments: deterministic assignment of units to variants and the statistics of results."""
