"""A worker of `persona serve` never outlives its supervisor, even one that died while the
worker was still starting (before it could note who its parent was)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from persona.settings import SUPERVISOR_PID


def test_a_worker_whose_supervisor_died_before_it_started_stops_at_once() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a supervisor that is already dead
    worker = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import time
                from persona.api.server import _die_with_parent
                _die_with_parent()
                time.sleep(30)
                print("outlived its supervisor")
                """
            ),
        ],
        env={**os.environ, SUPERVISOR_PID: str(gone.pid)},
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert worker.returncode == -9, worker.stderr  # SIGKILL, without waiting
    assert "outlived" not in worker.stdout
