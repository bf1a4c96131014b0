"""The last stage: business rules, diversity and a little exploration over the ranked list."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from persona.recommend.dataset import IntArray

NewItems = IntArray | Callable[[], IntArray | None]


class Draws(Protocol):
    """A source of uniform draws in [0, 1): ``random.Random`` or a numpy ``Generator``."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class RerankConfig:
    # No category may fill more than this share of a list (1.0 turns diversity off).
    max_category_share: float = 0.7
    # Expected share of slots given to new items the person has not seen (0 turns it off).
    exploration_share: float = 0.05
    new_item_days: float = 30.0  # an item is new this long after it first appeared
    new_item_max_interactions: int = 20


@dataclass(frozen=True)
class BusinessRules:
    """Per-request or per-placement rules: items pinned to positions, boosted or buried."""

    pins: Mapping[int, int] = field(default_factory=dict)  # item index -> 0-based position
    boosts: Mapping[int, float] = field(default_factory=dict)  # item index -> score multiplier
    buried: frozenset[int] = frozenset()


class Slot(NamedTuple):  # a tuple: made a dozen times per answer, it must be cheap
    item: int
    score: float
    explored: bool = False


def rerank(
    ranked: IntArray,
    scores: np.ndarray,
    k: int,
    *,
    categories: Sequence[Sequence[str]],
    config: RerankConfig,
    rules: BusinessRules | None = None,
    new_items: NewItems | None = None,
    rng: Draws | None = None,
) -> list[Slot]:
    """Pick ``k`` slots from ``ranked`` (best first, with ``scores`` aligned to it).

    ``new_items`` are exploration candidates, best first, or a function that finds them,
    called only when exploration gets a slot in this list; ``rng`` decides how many slots
    they get, so a seeded generator makes the list reproducible.
    """
    rules = rules or BusinessRules()
    order: Iterable[tuple[int, float]] = zip(
        ranked.tolist(), np.asarray(scores, dtype=np.float64).tolist(), strict=True
    )
    if rules.boosts or rules.buried:
        order = _apply_rules(list(order), rules)
    chosen = _diverse(order, k, categories, config.max_category_share)
    chosen = _explore(chosen, k, config, new_items, rng)
    return _pin(chosen, k, rules)


def _apply_rules(order: list[tuple[int, float]], rules: BusinessRules) -> list[tuple[int, float]]:
    boosted = [(item, score * rules.boosts.get(item, 1.0)) for item, score in order]
    kept = sorted((p for p in boosted if p[0] not in rules.buried), key=lambda p: -p[1])
    return kept + [p for p in boosted if p[0] in rules.buried]


def _diverse(
    order: Iterable[tuple[int, float]], k: int, categories: Sequence[Sequence[str]], share: float
) -> list[Slot]:
    """Greedy: take the best item unless one of its categories is already at its cap.

    Items skipped for diversity are used, in order, when nothing else is left.
    """
    cap = max(1, math.ceil(share * k)) if share < 1.0 else k
    counts: dict[str, int] = {}
    chosen: list[Slot] = []
    skipped: list[Slot] = []
    for item, score in order:
        if len(chosen) == k:
            break
        cats = categories[item]
        if any(counts.get(c, 0) >= cap for c in cats):
            skipped.append(Slot(item, score))
            continue
        for c in cats:
            counts[c] = counts.get(c, 0) + 1
        chosen.append(Slot(item, score))
    return chosen + skipped[: k - len(chosen)]


def _explore(
    chosen: list[Slot],
    k: int,
    config: RerankConfig,
    new_items: NewItems | None,
    rng: Draws | None,
) -> list[Slot]:
    """Give a random share of the slots, from the bottom of the list, to new items."""
    if not config.exploration_share or new_items is None or rng is None:
        return chosen
    expected = config.exploration_share * k
    slots = int(expected) + int(rng.random() < expected - int(expected))
    if not slots:
        return chosen
    if callable(new_items):
        new_items = new_items()
        if new_items is None:
            return chosen
    present = {s.item for s in chosen}
    fresh = [int(i) for i in new_items if int(i) not in present][:slots]
    if not fresh:
        return chosen
    kept = chosen[: max(0, min(len(chosen), k - len(fresh)))]
    return kept + [Slot(item, float("nan"), explored=True) for item in fresh]


def _pin(chosen: list[Slot], k: int, rules: BusinessRules) -> list[Slot]:
    """Put pinned items at their positions (the caller drops pins that a filter excludes)."""
    pins = rules.pins
    if not pins:
        return chosen[:k]
    rest = [s for s in chosen if s.item not in pins]
    result = rest[: max(0, k - len(pins))]
    for item, position in sorted(pins.items(), key=lambda p: p[1]):
        result.insert(min(position, len(result)), Slot(item, float("inf")))
    return result[:k]
