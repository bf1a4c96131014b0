"""The route table: the probes and the per-page-view routes are tried first, and nothing is lost."""

from __future__ import annotations

from persona.api.app import HOT_ROUTES, create_app
from persona.engine import Engine


def _table(engine: Engine) -> list[tuple[frozenset[str], str]]:
    app = create_app(engine)
    return [
        (frozenset(getattr(r, "methods", None) or ()), getattr(r, "path", ""))
        for r in app.router.routes
    ]


def test_the_hot_routes_are_matched_first_in_their_order(engine: Engine) -> None:
    first = _table(engine)[: len(HOT_ROUTES)]
    for (methods, path), (hot_method, hot_path) in zip(first, HOT_ROUTES, strict=True):
        assert hot_method in methods and path == hot_path


def test_every_route_is_still_there_once(engine: Engine) -> None:
    table = _table(engine)
    assert len(set(table)) == len(table)
    assert {"/docs", "/openapi.json", "/v1/segments/preview", "/v1/segments/{name}"} <= {
        path for _, path in table
    }
    paths = [path for _, path in table]
    # a literal path before the parameter that would also match it
    assert paths.index("/v1/segments/preview") < paths.index("/v1/segments/{name}")
