"""The last stage: business rules, diversity and a little exploration over the ranked list."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from persona.recommend.dataset import IntArray

NewItems = IntArray | Callable[[], IntArray | None]


class Draws(Protocol):
    """A source of uniform draws in [0, 1): ``random.Random`` or a numpy ``Generator``."""

    def random(self) -> float: ...


_MASK = (1 << 64) - 1


class SeededDraws:
    """Uniform draws in [0, 1), reproducible from a few integers (SplitMix64).

    Hand-written because a list needs one draw and seeding numpy's ``Generator`` costs tens of
    microseconds, a tenth of a whole answer served from a shortlist.
    """

    def __init__(self, *seed: int) -> None:
        state = 0
        for part in seed:
            state = _splitmix(state ^ (part & _MASK))[1]
        self._state = state

    def random(self) -> float:
        self._state, mixed = _splitmix(self._state)
        return (mixed >> 11) / float(1 << 53)


def _splitmix(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & _MASK
    z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return state, z ^ (z >> 31)


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
    boosts: Mapping[int, float] = field(default_factory=dict)  # item index -> odds multiplier
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
    if rules.boosts or rules.buried:
        order = _apply_rules(_pairs(ranked, scores), rules)
        chosen = _diverse(order, k, categories, config.max_category_share)
    else:
        # Most lists fill from their first few candidates: convert those first.
        head = 3 * k
        chosen = _diverse(
            _pairs(ranked[:head], scores[:head]), k, categories, config.max_category_share
        )
        if len(chosen) < k and len(ranked) > head:
            chosen = _diverse(_pairs(ranked, scores), k, categories, config.max_category_share)
    chosen = _explore(chosen, k, config, new_items, rng)
    return _pin(chosen, k, rules)


def _pairs(ranked: IntArray, scores: np.ndarray) -> list[tuple[int, float]]:
    return list(zip(ranked.tolist(), np.asarray(scores, dtype=np.float64).tolist(), strict=True))


def _apply_rules(order: list[tuple[int, float]], rules: BusinessRules) -> list[tuple[int, float]]:
    # A boost multiplies the item's odds, exp(score): it adds log(factor) to the ranker's
    # output, which may be negative (a product would then push a boosted item down).
    boosted = [
        (item, score + math.log(rules.boosts[item]) if item in rules.boosts else score)
        for item, score in order
    ]
    kept = sorted((p for p in boosted if p[0] not in rules.buried), key=lambda p: -p[1])
    return kept + [p for p in boosted if p[0] in rules.buried]


def _diverse(
    order: list[tuple[int, float]], k: int, categories: Sequence[Sequence[str]], share: float
) -> list[Slot]:
    """Greedy: take the best item unless one of its categories is already at its cap.

    Items skipped for diversity are used, in order, when nothing else is left.
    """
    cap = max(1, math.ceil(share * k)) if share < 1.0 else k
    counts: dict[str, int] = {}
    # Most lists break no cap: then the greedy pass would take the first k as they are.
    for item, _ in order[:k]:
        for c in categories[item]:
            counts[c] = counts.get(c, 0) + 1
    if not counts or max(counts.values()) <= cap:
        return [Slot(item, score) for item, score in order[:k]]
    counts = {}
    chosen: list[Slot] = []
    skipped: list[Slot] = []
    for item, score in order:
        if len(chosen) == k:
            break
        cats = categories[item]
        full = False
        for c in cats:
            if counts.get(c, 0) >= cap:
                full = True
                break
        if full:
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
