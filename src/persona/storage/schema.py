"""The whole relational schema: the core tables plus each domain's own ``tables`` module.

A domain that owns tables defines them in ``persona/<domain>/tables.py`` on the shared
``metadata`` and is imported here, so that migrations and the schema test see every table.
"""

from __future__ import annotations

from persona.decide import tables as decide_tables  # noqa: F401  (registers the tables)
from persona.predictions import tables as prediction_tables  # noqa: F401  (registers the tables)
from persona.privacy import tables as privacy_tables  # noqa: F401  (registers the tables)
from persona.segments import tables as segment_tables  # noqa: F401  (registers the tables)
from persona.storage.tables import metadata

__all__ = ["metadata"]
