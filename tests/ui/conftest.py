"""The seeded home the dashboard tests share (seeded once, copied for each module), and where
the browser tests put their screenshots, said at the end of the run."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from persona.clock import FakeClock, SystemClock
from persona.engine import Engine
from persona.settings import Settings
from tests.ui.seed import HOUR_SECONDS, seed

SCREENSHOT_DIRECTORIES: list[Path] = []


@dataclass(frozen=True)
class SeededHome:
    path: Path
    end_ms: int  # the seed's clock when it was done: a real server's now is just after it

    def copy(self, destination: Path) -> Path:
        """A home of one's own with the seeded store (the server processes write to it)."""
        shutil.copytree(self.path, destination, dirs_exist_ok=True)
        return destination


def settings_of(home: Path, **options: object) -> Settings:
    return Settings(home=home, database_url=f"sqlite:///{home / 'persona.db'}", **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> SeededHome:
    """The seed, played out over the hour before now (a real server sees it as recent)."""
    home = tmp_path_factory.mktemp("seeded")
    clock = FakeClock(SystemClock().now_ms() - HOUR_SECONDS * 1000)
    engine = Engine.open(settings_of(home), clock=clock)
    try:
        seed(engine, clock)
    finally:
        engine.close()
    return SeededHome(home, clock.now_ms())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for directory in SCREENSHOT_DIRECTORIES:
        terminalreporter.write_line(f"dashboard screenshots: {directory}")
