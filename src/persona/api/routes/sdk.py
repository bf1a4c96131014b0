"""The browser snippet, ``GET /sdk/persona.js``: a static file of the package, open to all
(it holds no secret; the page gives it its public key). See docs/browser.md."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["sdk"])

SNIPPET = "sdk/persona.js"  # under the package, shipped in the wheel with the code
MEDIA_TYPE = "application/javascript; charset=utf-8"
# The URL carries no version, so a page may run an older snippet for this long after an
# upgrade; past it the browser asks again with ``If-None-Match`` and gets a 304 or the new file.
MAX_AGE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    etag: str


@cache
def snippet() -> StaticFile:
    """The snippet and its entity tag, read once per process."""
    body = files("persona").joinpath(SNIPPET).read_bytes()
    return StaticFile(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    offered = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in offered or "*" in offered


@router.get("/sdk/persona.js", operation_id="get_sdk", include_in_schema=False)
async def get_sdk(request: Request) -> Response:
    """The snippet, cacheable: ``ETag`` and ``Cache-Control``; 304 when the tag matches."""
    static = snippet()
    headers = {
        "etag": static.etag,
        "cache-control": f"public, max-age={MAX_AGE_SECONDS}",
        "x-content-type-options": "nosniff",
    }
    if _matches(request.headers.get("if-none-match"), static.etag):
        return Response(status_code=304, headers=headers)
    return Response(static.body, media_type=MEDIA_TYPE, headers=headers)
