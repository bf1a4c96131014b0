"""Items written to the catalog after the model set was trained, served before the next
training: the model set knows nothing of them, so none of its sources can propose them, yet a
shop wants a new product seen the day it is listed.

Each answer of the pipeline may give its last place to the new item that best fits it: the one
whose categories the list's own items share most (the list stands for the person's taste, and
is at hand for a cached answer too), newest first among equals. It is shown as exploration is
("new in ..."), one place a list, and only where it fits the list. The new items are read from
the catalog (``Catalog.written_since`` the model set's training) at most every
``FRESH_TTL_SECONDS`` and at once after a catalog write in this process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from persona.recommend.answer import (
    RecommendationQuery,
    RecommendationResult,
    RecommendedItem,
    explanation,
)
from persona.recommend.dataset import Interactions
from persona.storage.records import ItemRecord

FRESH_TTL_SECONDS = 0.5  # a new item written by another process shows within this
FRESH_LIMIT = 500  # the latest items written considered


def with_new_item(
    result: RecommendationResult,
    query: RecommendationQuery,
    fresh: Sequence[ItemRecord],
    data: Interactions,
    had: frozenset[str] = frozenset(),
) -> RecommendationResult:
    """``result`` with its last place given to the best-fitting new item, if one fits."""
    if not result.items or not fresh:
        return result
    listed = {item.item_id for item in result.items}
    taste: Counter[str] = Counter()
    for item in result.items:
        index = data.item_index(item.item_id)
        if index is not None:
            taste.update(data.item_table.categories[index])
    best: ItemRecord | None = None
    best_fit = 0
    for record in fresh:  # the latest first: the first of the best fit wins
        if (
            not record.available
            or data.item_index(record.item_id) is not None  # known: the sources propose it
            or record.item_id in listed
            or record.item_id in had
            or record.item_id in query.exclude
            or (query.category is not None and query.category not in record.categories)
        ):
            continue
        fit = sum(taste[c] for c in record.categories)
        if fit > best_fit:
            best, best_fit = record, fit
    if best is None:
        return result
    kept = result.items[:-1] if len(result.items) >= query.n else result.items
    score = result.items[-1].score  # the last place's own: scores never rise down a list
    category = next((c for c in best.categories if taste[c]), None)
    new = RecommendedItem(best.item_id, score, ["new_items"], explanation("new", category=category))
    return replace(result, items=[*kept, new])
