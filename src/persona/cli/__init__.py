"""The ``persona`` command line."""
