"""``python -m persona`` is the ``persona`` command."""

from persona.cli.main import main

main()
