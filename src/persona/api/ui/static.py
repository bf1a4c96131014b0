"""The dashboard's static files, ``GET /ui/static/<name>``: its style sheet, its script and
Chart.js (vendored from the npm registry, its license header kept; nothing is fetched from
another site at run time). Open to all, like the browser snippet: they hold no data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request, Response

from persona.api.ui.pages import UI

router = APIRouter(include_in_schema=False)

MEDIA_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
# The URLs carry no version: after an upgrade a browser may keep an older file this long.
MAX_AGE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    etag: str
    media_type: str


@cache
def static_files() -> dict[str, StaticFile]:
    """Every file of the static directory, read once per process."""
    found = {}
    for entry in files("persona.api.ui").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            body = entry.read_bytes()
            etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            found[entry.name] = StaticFile(body, etag, MEDIA_TYPES[suffix])
    return found


@router.get(f"{UI}/static/{{name}}", name="ui_static")
async def static_file(request: Request, name: str) -> Response:
    found = static_files().get(name)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {
        "etag": found.etag,
        "cache-control": f"public, max-age={MAX_AGE_SECONDS}",
        "x-content-type-options": "nosniff",
    }
    if found.etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
