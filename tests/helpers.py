"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

from persona.engine import Engine


def view(
    event_id: str | None,
    user: str = "u1",
    item: str = "i1",
    ts: float = 1_700_000_000,
    **extra: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "view", "user_id": user, "item_id": item, "timestamp": ts}
    if event_id is not None:
        event["event_id"] = event_id
    event.update(extra)
    return event


def stored_event_count(engine: Engine) -> int:
    with engine.storage.read() as uow:
        return uow.events.count()


def quarantine_count(engine: Engine) -> int:
    with engine.storage.read() as uow:
        return uow.quarantine.count()
