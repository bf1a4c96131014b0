"""A synthetic shop, deterministic from a seed: items and the events of people browsing it.

MovieLens has 671 people; the questions of scale (does import, training and serving hold at a
million people?) need data of any size whose structure a recommender can learn. The world here
is small enough to read in one sitting:

- **Items** belong to taste groups (a few dozen items each). A group has a main category and a
  handful of tags, which its items mostly carry, so content and behaviour agree. Popularity
  within a group and across groups follows power laws. Most items exist before the first day;
  the rest arrive evenly during the period, and only then can anyone see them.
- **People** like a few groups, with weights. For half of them tastes drift: one liked group is
  replaced by another, gradually over their active time. Activity per person is long-tailed
  (log-normal), every person has at least one view.
- **Sessions**: a person's views come in sessions within their active window; a session mostly
  browses one group, and a sixth of views are anything popular in the shop.
- **The funnel**: a view may lead to a click, a click to an add to cart, a cart to a purchase
  with a revenue (price x quantity). Items of a group the person likes convert more.
- **Anonymous visitors**: a share of people start anonymous (``anonymous_id`` only); most of
  them identify at some moment (an ``identify`` event with both ids) and are known by
  ``user_id`` afterwards; the rest never do.

Everything is drawn with numpy from one ``Generator`` in a fixed order and built column by
column with pyarrow, so ten million events take seconds and the same arguments give the same
files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class FileFormat(StrEnum):
    PARQUET = "parquet"
    JSONL = "jsonl"


CATEGORIES = (
    "Books", "Music", "Movies", "Games", "Electronics", "Computers", "Phones", "Cameras",
    "Home", "Kitchen", "Garden", "Tools", "Toys", "Baby", "Beauty", "Health",
    "Fashion", "Shoes", "Jewellery", "Sports", "Outdoors", "Travel", "Pets", "Food",
)  # fmt: skip
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARES = (0.58, 0.35, 0.07)
COUNTRIES = ("US", "DE", "GB", "FR", "IN", "BR", "JP", "ES", "IT", "NL", "PL", "SE")
COUNTRY_SHARES = (0.30, 0.12, 0.10, 0.08, 0.08, 0.07, 0.06, 0.05, 0.05, 0.04, 0.03, 0.02)

ITEMS_PER_GROUP = 60
TAGS_PER_GROUP = 6
LIKED_GROUPS = 3
DRIFTING_SHARE = 0.5
ANONYMOUS_SHARE = 0.35  # of people: start without a user id
NEVER_IDENTIFY_SHARE = 0.4  # of those: stay anonymous
NEW_ITEM_SHARE = 0.25  # of items: created during the period
NEW_SESSION = 0.3  # chance that a view starts a new session
POPULAR_VIEW = 0.15  # chance that a view is of anything popular, not of a liked group
LEAVE_GROUP = 0.2  # chance that a view within a session leaves the session's group
CLICK = (0.1, 0.3)  # chance of a click after a view: other group, liked group
CART = 0.3  # of clicks
PURCHASE = 0.45  # of carts


@dataclass(frozen=True)
class Shape:
    """How big the synthetic shop is and when it happens."""

    people: int
    items: int
    events: int
    days: int = 180
    seed: int = 0
    end: datetime = datetime(2026, 12, 1, tzinfo=UTC)  # every event happens before this moment

    def __post_init__(self) -> None:
        if self.people < 1 or self.items < 1 or self.days < 1:
            raise ValueError("people, items and days must be at least 1")
        if self.events < 2 * self.people:
            raise ValueError(
                f"{self.events:,} events are too few for {self.people:,} people: "
                "at least two events a person (a view, and an identify for some)"
            )

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp()) * 1000

    @property
    def start_ms(self) -> int:
        return self.end_ms - self.days * 86_400_000


@dataclass(frozen=True)
class Workload:
    """The generated shop: the catalog and the event log, as Arrow tables."""

    items: pa.Table
    events: pa.Table


def generate(shape: Shape) -> Workload:
    rng = np.random.default_rng(shape.seed)
    world = _Catalog.draw(shape, rng)
    people = _People.draw(shape, world, rng)
    views = _views(shape, world, people, rng)
    return Workload(items=world.table(shape), events=_event_log(shape, world, people, views, rng))


# The catalog ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
    group: IntArray  # by item
    weight: FloatArray  # popularity within the group, by item
    created_ms: IntArray
    price: FloatArray
    categories: list[list[str]]
    tags: list[list[str]]
    group_weight: FloatArray  # how many people like each group, relatively
    # Items sorted by (group, creation), for drawing among the items that exist at a moment.
    order: IntArray
    group_start: IntArray  # offsets into ``order``, one per group and a last one
    sorted_keys: IntArray  # (group << _MS_BITS) | creation time, along ``order``
    cumulative: FloatArray  # cumulative weights along ``order``, starting at 0

    @property
    def n_groups(self) -> int:
        return len(self.group_weight)

    @classmethod
    def draw(cls, shape: Shape, rng: np.random.Generator) -> _Catalog:
        n = shape.items
        n_groups = max(1, round(n / ITEMS_PER_GROUP))
        group_weight = 1.0 / np.arange(1, n_groups + 1) ** 0.8
        rng.shuffle(group_weight)
        group = rng.integers(0, n_groups, n)
        group[:n_groups] = np.arange(min(n, n_groups))  # every group has an item
        weight = rng.lognormal(0.0, 1.4, n)
        new = rng.random(n) < NEW_ITEM_SHARE
        created = np.where(
            new,
            shape.start_ms + (rng.random(n) * shape.days * 86_400_000).astype(np.int64),
            shape.start_ms - (rng.random(n) * 730 * 86_400_000).astype(np.int64),
        ).clip(0)
        main_category = rng.integers(0, len(CATEGORIES), n_groups)
        n_tags = max(TAGS_PER_GROUP * 4, n_groups)
        group_tags = rng.integers(0, n_tags, (n_groups, TAGS_PER_GROUP))
        second = rng.random(n) < 0.3
        second_category = rng.integers(0, len(CATEGORIES), n)
        own_tags = rng.integers(0, TAGS_PER_GROUP, (n, 3))
        stray_tag = rng.integers(0, n_tags, n)
        tag_count = rng.integers(1, 4, n)
        price = np.round(rng.lognormal(3.0 + 0.1 * (main_category[group] % 8), 0.7, n), 2).clip(
            0.5, 5000
        )
        categories: list[list[str]] = []
        tags: list[list[str]] = []
        for i in range(n):  # a Python loop over items, not events: a million take a second
            g = group[i]
            mine = [CATEGORIES[main_category[g]]]
            if second[i] and second_category[i] != main_category[g]:
                mine.append(CATEGORIES[second_category[i]])
            categories.append(mine)
            chosen = {f"tag-{group_tags[g, t]}" for t in own_tags[i, : tag_count[i]]}
            if tag_count[i] == 3:
                chosen.add(f"tag-{stray_tag[i]}")
            tags.append(sorted(chosen))
        order = np.lexsort((created, group))
        group_start = np.searchsorted(group[order], np.arange(n_groups + 1))
        cumulative = np.concatenate([[0.0], np.cumsum(weight[order])])
        return cls(
            group=group,
            weight=weight,
            created_ms=created,
            price=price,
            categories=categories,
            tags=tags,
            group_weight=group_weight / group_weight.sum(),
            order=order,
            group_start=group_start,
            sorted_keys=(group[order].astype(np.int64) << _MS_BITS) | created[order],
            cumulative=cumulative,
        )

    def existing(self, groups: IntArray, moments_ms: IntArray) -> IntArray:
        """How many items of each group exist at each moment (element-wise)."""
        # Positions in the (group, creation) order: one search on a combined key for all rows.
        keys = (groups.astype(np.int64) << _MS_BITS) | moments_ms
        return np.searchsorted(self.sorted_keys, keys, side="right") - self.group_start[groups]

    def pick(self, groups: IntArray, moments_ms: IntArray, rng: np.random.Generator) -> IntArray:
        """One item per row: of the row's group, existing at the row's moment, by popularity.

        A group without an item yet gives -1.
        """
        start = self.group_start[groups]
        end = start + self.existing(groups, moments_ms)
        low = self.cumulative[start]
        high = self.cumulative[end]
        target = low + rng.random(len(groups)) * (high - low)
        position = np.searchsorted(self.cumulative, target, side="right") - 1
        position = np.clip(position, start, np.maximum(start, end - 1))
        return np.where(end > start, self.order[np.minimum(position, len(self.order) - 1)], -1)

    def table(self, shape: Shape) -> pa.Table:
        n = len(self.group)
        ids = _prefixed("i", np.arange(n))
        titles = pc.binary_join_element_wise(
            pa.array([c[0] for c in self.categories]),
            pc.cast(pa.array(np.arange(n)), pa.string()),
            " ",
        )
        brand = pc.cast(pa.array(self.group % 97), pa.string())
        attributes = pc.binary_join_element_wise('{"brand": "brand-', brand, '"}', "")
        return pa.table(
            {
                "item_id": ids,
                "title": titles,
                "categories": pa.array(self.categories, pa.list_(pa.string())),
                "tags": pa.array(self.tags, pa.list_(pa.string())),
                "price": pa.array(self.price),
                "created_at": pa.array(self.created_ms, pa.timestamp("ms", tz="UTC")),
                "attributes": attributes,
            }
        )


# Keys of (group, creation time): milliseconds since 1970 fit 45 bits until the year 3084.
_MS_BITS = 45


# People --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _People:
    views: IntArray  # how many views each person makes
    first_ms: IntArray  # active window
    last_ms: IntArray
    liked: IntArray  # people x LIKED_GROUPS, before any drift
    liked_weights: FloatArray  # people x LIKED_GROUPS, cumulative, ending at 1
    drift_to: IntArray  # the group that replaces the first liked one, or -1
    anonymous: npt.NDArray[np.bool_]
    identify_ms: IntArray  # when an anonymous person identifies; max int64 if never
    device: IntArray
    country: IntArray

    @classmethod
    def draw(cls, shape: Shape, world: _Catalog, rng: np.random.Generator) -> _People:
        n = shape.people
        anonymous = rng.random(n) < ANONYMOUS_SHARE
        identifies = anonymous & (rng.random(n) >= NEVER_IDENTIFY_SHARE)
        # Identify events come out of the event budget; the rest are views and what follows.
        chain_budget = shape.events - int(identifies.sum())
        # Drawn a little long (as if no view were of a liked group), then trimmed to the budget.
        shortest_chain = 1 + CLICK[0] * (1 + CART * (1 + PURCHASE))
        n_views = max(n, int(chain_budget / shortest_chain))
        activity = rng.lognormal(0.0, 1.2, n)
        views = 1 + rng.multinomial(n_views - n, activity / activity.sum())
        span = shape.days * 86_400_000
        first = shape.start_ms + (rng.random(n) ** 1.5 * span * 0.9).astype(np.int64)
        last = first + ((shape.end_ms - 1 - first) * rng.random(n) ** 0.5).astype(np.int64)
        liked = rng.choice(world.n_groups, (n, LIKED_GROUPS), p=world.group_weight)
        weights = rng.dirichlet(np.ones(LIKED_GROUPS), n).cumsum(axis=1)
        weights[:, -1] = 1.0
        drift_to = np.where(
            rng.random(n) < DRIFTING_SHARE,
            rng.choice(world.n_groups, n, p=world.group_weight),
            -1,
        )
        identify = np.where(
            identifies,
            first + ((last - first) * rng.random(n)).astype(np.int64),
            np.iinfo(np.int64).max,
        )
        return cls(
            views=views,
            first_ms=first,
            last_ms=last,
            liked=liked,
            liked_weights=weights,
            drift_to=drift_to,
            anonymous=anonymous,
            identify_ms=identify,
            device=rng.choice(len(DEVICES), n, p=DEVICE_SHARES),
            country=rng.choice(len(COUNTRIES), n, p=COUNTRY_SHARES),
        )

    def groups_at(
        self, person: IntArray, moment_ms: IntArray, rng: np.random.Generator
    ) -> IntArray:
        """A liked group for each (person, moment), the drift applied as of the moment."""
        column = (rng.random(len(person))[:, None] > self.liked_weights[person]).sum(axis=1)
        group = self.liked[person, column]
        window = np.maximum(self.last_ms[person] - self.first_ms[person], 1)
        progress = (moment_ms - self.first_ms[person]) / window
        drifting = self.drift_to[person] >= 0
        moved = drifting & (column == 0) & (rng.random(len(person)) < progress)
        return np.where(moved, self.drift_to[person], group)


# Views and the funnel ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Views:
    person: IntArray
    item: IntArray
    moment_ms: IntArray
    liked: npt.NDArray[np.bool_]  # the item is of a group the person likes
    first: npt.NDArray[np.bool_]  # the person's first view


def _views(shape: Shape, world: _Catalog, people: _People, rng: np.random.Generator) -> _Views:
    person = np.repeat(np.arange(shape.people), people.views)
    n = len(person)
    first_of_person = np.ones(n, dtype=np.bool_)
    first_of_person[1:] = person[1:] != person[:-1]
    starts = first_of_person | (rng.random(n) < NEW_SESSION)
    session = np.cumsum(starts) - 1
    session_person = person[starts]
    session_start = people.first_ms[session_person] + (
        (people.last_ms[session_person] - people.first_ms[session_person])
        * rng.random(len(session_person))
    ).astype(np.int64)
    gaps = rng.exponential(50_000.0, n).astype(np.int64) + 2_000
    gaps[starts] = 0
    elapsed = np.cumsum(gaps)
    moment = session_start[session] + elapsed - elapsed[starts][session]
    moment = np.minimum(moment, shape.end_ms - 3_600_000)
    # A session browses one liked group; some views stray to another liked group, some to
    # whatever is popular.
    session_group = people.groups_at(session_person, session_start, rng)
    group = np.where(
        rng.random(n) < LEAVE_GROUP,
        people.groups_at(person, moment, rng),
        session_group[session],
    )
    popular = rng.random(n) < POPULAR_VIEW
    group = np.where(popular, rng.choice(world.n_groups, n, p=world.group_weight), group)
    item = world.pick(group, moment, rng)
    # Nothing of the group existed yet: look at something popular that did.
    missing = item < 0
    while missing.any():
        retry = rng.choice(world.n_groups, int(missing.sum()), p=world.group_weight)
        item[missing] = world.pick(retry, moment[missing], rng)
        popular[missing] = True
        missing = item < 0
    of_group = world.group[item]
    liked = (
        ~popular
        | (of_group[:, None] == people.liked[person]).any(axis=1)
        | (of_group == people.drift_to[person])
    )
    return _Views(person=person, item=item, moment_ms=moment, liked=liked, first=first_of_person)


_TYPES = ("view", "click", "add_to_cart", "purchase", "identify")


def _event_log(
    shape: Shape, world: _Catalog, people: _People, views: _Views, rng: np.random.Generator
) -> pa.Table:
    n = len(views.person)
    click = rng.random(n) < np.where(views.liked, CLICK[1], CLICK[0])
    cart = click & (rng.random(n) < CART)
    purchase = cart & (rng.random(n) < PURCHASE)
    depth = 1 + click.astype(np.int64) + cart + purchase
    n_identify = int((people.identify_ms < np.iinfo(np.int64).max).sum())
    depth = _trimmed(depth, views.first, shape.events - n_identify, rng)
    # One row per event of each chain: chain j contributes depth[j] rows, steps 0..depth-1.
    chain = np.repeat(np.arange(n), depth)
    step = np.arange(len(chain)) - np.repeat(np.cumsum(depth) - depth, depth)
    delays = np.stack(
        [
            np.zeros(n),
            rng.uniform(3_000, 30_000, n),
            rng.uniform(20_000, 300_000, n),
            rng.uniform(60_000, 1_200_000, n),
        ],
        axis=1,
    ).cumsum(axis=1)
    moment = views.moment_ms[chain] + delays[chain, step].astype(np.int64)
    quantity = rng.choice(3, n, p=(0.85, 0.1, 0.05)) + 1
    identifying = np.flatnonzero(people.identify_ms < np.iinfo(np.int64).max)
    person = np.concatenate([views.person[chain], identifying])
    kind = np.concatenate([step, np.full(len(identifying), 4)])
    moment = np.concatenate([moment, people.identify_ms[identifying]])
    item = np.concatenate([views.item[chain], np.full(len(identifying), -1)])
    revenue = np.concatenate(
        [
            np.where(step == 3, world.price[views.item[chain]] * quantity[chain], np.nan),
            np.full(len(identifying), np.nan),
        ]
    )
    units = np.concatenate([np.where(step == 3, quantity[chain], 0), np.zeros(len(identifying))])
    order = np.lexsort((kind, person, moment))
    return _columns(shape, people, person[order], kind[order], moment[order], item[order],
                    revenue[order], units[order].astype(np.int64))  # fmt: skip


def _trimmed(
    depth: IntArray, first: npt.NDArray[np.bool_], total: int, rng: np.random.Generator
) -> IntArray:
    """Chain lengths summing to ``total``: random chains dropped, the last one cut short.

    Every person keeps their first view, so nobody vanishes: other chains go first, then the
    first chains lose what followed the view. A cut chain keeps its head, which is still a
    funnel (a view, maybe a click ...).
    """
    depth = depth.copy()
    excess = int(depth.sum()) - total
    for removable in (np.where(first, 0, depth), np.where(first, depth - 1, 0)):
        if excess <= 0:
            break
        chains = rng.permutation(np.flatnonzero(removable))
        removed = np.cumsum(removable[chains])
        whole = int(np.searchsorted(removed, excess, side="right"))
        depth[chains[:whole]] -= removable[chains[:whole]]
        excess -= int(removed[whole - 1]) if whole else 0
        if excess > 0 and whole < len(chains):
            depth[chains[whole]] -= excess
            excess = 0
    if excess != 0:
        raise ValueError("not enough views drawn for the event budget")
    return depth


def _columns(
    shape: Shape,
    people: _People,
    person: IntArray,
    kind: IntArray,
    moment: IntArray,
    item: IntArray,
    revenue: FloatArray,
    units: IntArray,
) -> pa.Table:
    n = len(person)
    known = (~people.anonymous[person]) | (moment >= people.identify_ms[person])
    is_identify = kind == 4
    user = _where(known | is_identify, _prefixed("u", person))
    anonymous = _where(people.anonymous[person] & (~known | is_identify), _prefixed("a", person))
    contexts = pa.array(
        [
            json.dumps({"device": DEVICES[d], "country": COUNTRIES[c]})
            for d, c in zip(people.device, people.country, strict=True)
        ]
    ).take(pa.array(person))
    quantity = _where(units > 0, pc.cast(pa.array(units), pa.string()))
    properties = pc.binary_join_element_wise('{"quantity": ', quantity, "}", "")
    return pa.table(
        {
            "event_id": _prefixed(f"g{shape.seed}-", np.arange(n)),
            "type": pa.array(_TYPES).take(pa.array(kind)),
            "user_id": user,
            "anonymous_id": anonymous,
            "item_id": _where(item >= 0, _prefixed("i", item)),
            "timestamp": pa.array(moment, pa.timestamp("ms", tz="UTC")),
            "value": pa.array(revenue, mask=np.isnan(revenue)),
            "properties": properties,
            "context": contexts,
        }
    )


def _where(present: npt.NDArray[np.bool_], values: pa.Array) -> pa.Array:
    """``values`` where ``present``, null elsewhere."""
    return pc.if_else(pa.array(present), values, pa.scalar(None, values.type))


def _prefixed(prefix: str, numbers: IntArray) -> pa.Array:
    text = pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, text, "")


# Files ---------------------------------------------------------------------------------------


def write(
    workload: Workload, out: Path, formats: tuple[FileFormat, ...] = (FileFormat.PARQUET,)
) -> list[Path]:
    """``items.<ext>`` and ``events.<ext>`` in ``out`` for each format; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in formats:
        for name, table in (("items", workload.items), ("events", workload.events)):
            path = out / f"{name}.{kind}"
            if kind == "parquet":
                pq.write_table(table, path, row_group_size=1 << 20, compression="zstd")
            else:
                with path.open("wb") as handle:
                    for chunk in _json_lines(table):
                        handle.write(chunk)
            written.append(path)
    return written


def _json_lines(table: pa.Table, rows: int = 1 << 18) -> Iterator[bytes]:
    """The table as JSON Lines, built column-wise (a million rows a second, not a dict each).

    Null fields are left out. Ids and labels here are generated, so they need no escaping;
    JSON-text columns (``context``, ``properties``, ``attributes``) are written as objects.
    """
    for offset in range(0, table.num_rows, rows):
        part = table.slice(offset, rows)
        fields = []
        for name in part.column_names:
            column = part.column(name).combine_chunks()
            fields.append(pc.binary_join_element_wise(f'"{name}":', _json_values(name, column), ""))
        lines = pc.binary_join_element_wise(*fields, ",", null_handling="skip")
        body = pc.binary_join_element_wise("{", lines, "}\n", "")
        # The lines end in newlines: the array's character buffer is the file's bytes.
        offsets = np.frombuffer(body.buffers()[1], dtype=np.int32)[body.offset :]
        data = body.buffers()[2]
        yield data.to_pybytes()[offsets[0] : offsets[len(body)]]


def _json_values(name: str, column: pa.Array) -> pa.Array:
    kind = column.type
    if name in ("context", "properties", "attributes"):
        return column
    if pa.types.is_timestamp(kind):
        text = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S")  # seconds with milliseconds
        return pc.binary_join_element_wise('"', text, 'Z"', "")
    if pa.types.is_list(kind):
        inner = pc.binary_join(column, '","')
        text = pc.binary_join_element_wise('["', inner, '"]', "")
        return pc.if_else(pc.equal(pc.list_value_length(column), 0), "[]", text)
    if pa.types.is_string(kind):
        return pc.binary_join_element_wise('"', column, '"', "")
    return pc.cast(column, pa.string())


def this_hour() -> datetime:
    """The start of the current hour (UTC): generated events then end now, as a live shop's."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
