"""The baseline of the serving benchmarks: a FastAPI app that answers a fixed JSON document.

It runs under uvicorn exactly as `persona serve` does (one process), so the ratio between the
two measures what persona adds to the bare HTTP stack. The answer is read once, at start, from
the file named by ``TRIVIAL_BODY`` (a real answer of the route it stands in for, so both send
the same bytes); every path answers it.

    TRIVIAL_BODY=answer.json python -m uvicorn trivial_app:app --port 8001
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response

BODY = Path(os.environ["TRIVIAL_BODY"]).read_bytes()

app = FastAPI()


@app.get("/{path:path}")
async def answer(path: str) -> Any:
    return Response(BODY, media_type="application/json")
