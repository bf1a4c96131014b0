"""One person: their profile, segments, scores, consent, current recommendations with the
reason for each, and, for an admin key, their events and the decisions made for them.

A ``read`` key sees what the API shows it (profile, segments, consent, recommendations). The
event timeline and the decision log of a person are what a subject export holds, which the API
gives to ``admin`` only: the page shows them to an admin key alone.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from persona.api.deps import engine_of
from persona.api.ui import charts
from persona.api.ui.pages import UI, UiRoute, Viewer, redirect, render, viewer
from persona.engine import Engine
from persona.errors import NotFoundError, PersonaError
from persona.profiles.schema import Profile
from persona.recommend import RecommendationQuery

router = APIRouter(route_class=UiRoute, include_in_schema=False)

PERSON_ID = re.compile(r"[^\x00-\x1f\x7f]{1,128}")  # the API's rule for ids
TIMELINE_EVENTS = 50
DECISIONS = 20
RECOMMENDATIONS = 10


def explain(explanation: dict[str, Any] | None) -> str:
    """An item's explanation in words, as a page would render it."""
    if not explanation:
        return ""
    kind = explanation.get("kind")
    category = explanation.get("category")
    if kind == "history":
        titles = [i.get("title") or i.get("item_id") for i in explanation.get("items") or []]
        return f"Because you watched {', '.join(str(t) for t in titles)}" if titles else ""
    if kind == "new":
        return f"New in {category}" if category else "New"
    if kind == "trending_in_category":
        return f"Trending in {category}" if category else "Trending"
    return {
        "trending": "Trending now",
        "popular": "Popular",
        "segment": "Popular with people in the same segments",
        "context": "Popular on the same device and in the same country",
        "rule": "Placed by a business rule",
        "taste": "Matches the taste of the whole history",
    }.get(str(kind), str(kind or ""))


def _recommendations(engine: Engine, person_id: str) -> dict[str, Any]:
    query = RecommendationQuery(person_id=person_id, n=RECOMMENDATIONS)
    try:
        result = engine.recommendations.recommend(query)
    except PersonaError as exc:
        return {"error": exc.detail, "items": []}
    titles: dict[str, str | None] = {}
    for item in result.items:
        try:
            titles[item.item_id] = engine.catalog.get(item.item_id).title
        except NotFoundError:
            titles[item.item_id] = None
    return {
        "error": None,
        "source": result.source,
        "reason": result.reason,
        "model_version": result.model_version,
        "items": [
            {
                "item_id": item.item_id,
                "title": titles[item.item_id],
                "score": item.score,
                "sources": item.sources,
                "because": explain(item.explanation),
                "kind": (item.explanation or {}).get("kind"),
            }
            for item in result.items
        ],
    }


def _affinities_chart(profile: Profile) -> dict[str, Any] | None:
    top = list(profile.category_affinities.items())[:12]
    if not top:
        return None
    return charts.bar(
        [name for name, _ in top],
        {"affinity": [round(value, 4) for _, value in top]},
        y_title="time-decayed affinity",
        horizontal=True,
    )


@router.get(f"{UI}/people", name="ui_people")
def people(
    request: Request,
    person: str | None = Query(None, alias="id", max_length=128),
    seen: Viewer = Depends(viewer),
) -> Response:
    """A search box: an id (user or anonymous) opens that person's page."""
    if person and person.strip():
        return redirect(f"{UI}/people/{quote(person.strip(), safe='')}")
    return render(request, "people.html", seen, title="People", missing=None)


@router.get(f"{UI}/people/{{person_id:path}}", name="ui_person")
def person_page(request: Request, person_id: str, seen: Viewer = Depends(viewer)) -> Response:
    engine = engine_of(request)
    if not PERSON_ID.fullmatch(person_id):
        return render(request, "people.html", seen, status=404, title="People", missing=person_id)
    try:
        profile = engine.profiles.get(person_id)
    except NotFoundError:
        return render(request, "people.html", seen, status=404, title="People", missing=person_id)
    key = profile.profile_key
    events: list[Any] | None = None
    decisions: list[Any] | None = None
    if seen.admin:
        with engine.storage.read() as uow:
            events = uow.events.for_profile(key, TIMELINE_EVENTS)
            decisions = uow.decisions.for_profile(key, DECISIONS)
    return render(
        request,
        "person.html",
        seen,
        title=f"Person {profile.profile_id}",
        profile=profile,
        affinities=_affinities_chart(profile),
        stays=engine.segments.history(key),
        consent=engine.privacy.consent.current(key),
        recommendations=_recommendations(engine, person_id),
        events=events,
        decisions=decisions,
    )
