"""persona: a self-hosted engine for data-driven content personalization."""

from __future__ import annotations

import functools
from importlib import metadata

DISTRIBUTION = "persona-personalization"  # on the package index ("persona" is another project)
COMMAND = "persona.cli.main:main"


@functools.cache
def installed_version() -> str:
    """The version in the installed distribution's metadata (pyproject.toml's version)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    # installed under another name: the distribution whose ``persona`` command is this one
    for script in metadata.entry_points(group="console_scripts", name="persona"):
        if script.value == COMMAND and script.dist is not None:
            return script.dist.version
    return "0+unknown"  # not installed: run from a source tree


def __getattr__(name: str) -> str:
    if name == "__version__":  # read on first use: the metadata lookup costs an import a scan
        return installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
