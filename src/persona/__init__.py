"""persona: a self-hosted engine for data-driven content personalization."""

__version__ = "0.1.0"
