"""Business rules of a list: pin an item to a place, boost or bury items by id, category or
tag, each within optional validity dates. A placement carries its rules (its
``recommendations.rules``), and a recommendation request names its placement: the rules come
with the query, so that two placements' lists are cached apart.

The rerank stage applies them (``rerank.BusinessRules``, by item index); this module turns the
rules as written into that, for one model set at one moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from persona.clock import epoch_ms
from persona.documents import NO_NUL
from persona.recommend.dataset import IntArray, Interactions
from persona.recommend.rerank import BusinessRules

Action = Literal["pin", "boost", "bury"]


@dataclass(frozen=True)
class BusinessRule:
    """One rule, hashable (it is part of a cached answer's key)."""

    action: Action
    item_id: str | None = None
    category: str | None = None
    tag: str | None = None
    position: int | None = None  # pin: 1 for the first place
    factor: float | None = None  # boost: the item's odds are multiplied by it
    starts_ms: int | None = None
    ends_ms: int | None = None

    def active(self, now_ms: int) -> bool:
        return (self.starts_ms is None or self.starts_ms <= now_ms) and (
            self.ends_ms is None or now_ms < self.ends_ms
        )


class BusinessRuleIn(BaseModel):
    """A rule as a placement's configuration writes it: what it does, to what, and when."""

    model_config = ConfigDict(extra="forbid")
    action: Action = Field(
        description="`pin`: the item at `position` (when it may be shown to the person); "
        "`boost`: the matching items' odds of being chosen multiplied by `factor`; `bury`: the "
        "matching items after every other candidate."
    )
    item_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=NO_NUL)
    category: str | None = Field(default=None, min_length=1, max_length=128, pattern=NO_NUL)
    tag: str | None = Field(default=None, min_length=1, max_length=128, pattern=NO_NUL)
    position: int | None = Field(default=None, ge=1, le=100, description="`pin`: 1 is first.")
    factor: float | None = Field(default=None, gt=0, le=1000, description="`boost`.")
    starts_at: datetime | None = Field(default=None, description="Applies from then on.")
    ends_at: datetime | None = Field(default=None, description="Applies until then.")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        targets = [t for t in (self.item_id, self.category, self.tag) if t is not None]
        if len(targets) != 1:
            raise ValueError("a rule names exactly one of item_id, category or tag")
        if self.action == "pin" and (self.item_id is None or self.position is None):
            raise ValueError("a pin names an item_id and a position")
        if self.action == "boost" and self.factor is None:
            raise ValueError("a boost needs a factor")
        if self.action != "pin" and self.position is not None:
            raise ValueError("only a pin has a position")
        if self.action != "boost" and self.factor is not None:
            raise ValueError("only a boost has a factor")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must come after starts_at")
        return self

    def rule(self) -> BusinessRule:
        return BusinessRule(
            self.action,
            self.item_id,
            self.category,
            self.tag,
            self.position,
            self.factor,
            None if self.starts_at is None else epoch_ms(self.starts_at),
            None if self.ends_at is None else epoch_ms(self.ends_at),
        )


class RuleTargets:
    """The item indices a rule names, in one model set: a category's or a tag's are found once
    (a scan of the catalog) and kept, at most ``MAX_LABELS`` of them."""

    MAX_LABELS = 1000

    def __init__(self, data: Interactions) -> None:
        self.data = data
        self._labelled: dict[tuple[str, str], IntArray] = {}

    def of(self, rule: BusinessRule) -> IntArray:
        if rule.item_id is not None:
            index = self.data.item_index(rule.item_id)
            return np.asarray([] if index is None else [index], dtype=np.int64)
        kind, wanted = ("category", rule.category) if rule.category else ("tag", rule.tag or "")
        found = self._labelled.get((kind, wanted))
        if found is None:
            table = self.data.item_table
            labels = table.categories if kind == "category" else table.tags
            found = np.asarray([i for i, own in enumerate(labels) if wanted in own], np.int64)
            if len(self._labelled) >= self.MAX_LABELS:
                self._labelled.clear()
            self._labelled[(kind, wanted)] = found
        return found


def business_rules(
    rules: Sequence[BusinessRule], targets: RuleTargets, now_ms: int
) -> BusinessRules | None:
    """The rules in force at ``now_ms``, by the model set's item indices (None: none). Rules
    on items the model set does not know are left out; several boosts of one item multiply."""
    pins: dict[int, int] = {}
    boosts: dict[int, float] = {}
    buried: set[int] = set()
    for rule in rules:
        if not rule.active(now_ms):
            continue
        items = targets.of(rule)
        if rule.action == "pin":
            if len(items) and rule.position is not None:
                pins[int(items[0])] = rule.position - 1
        elif rule.action == "boost" and rule.factor is not None:
            for item in items.tolist():
                boosts[item] = boosts.get(item, 1.0) * rule.factor
        elif rule.action == "bury":
            buried.update(items.tolist())
    if not (pins or boosts or buried):
        return None
    return BusinessRules(pins=pins, boosts=boosts, buried=frozenset(buried))
