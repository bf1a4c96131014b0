"""The synthetic shop: deterministic, exactly the size asked, a consistent funnel and identities,
importable in both formats, and structured enough that recommenders beat popularity on it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from persona.cli.main import app
from persona.demo.synthetic import Shape, generate
from persona.engine import Engine
from persona.recommend.evaluation import baselines, run_protocol, workload_frame
from persona.settings import Settings

END = datetime(2026, 6, 1, tzinfo=UTC)
SHAPE = Shape(people=2_000, items=1_200, events=30_000, days=60, seed=7, end=END)
runner = CliRunner()


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    frame: pd.DataFrame = generate(SHAPE).events.to_pandas()
    return frame


def test_the_same_shape_gives_the_same_shop_and_another_seed_another() -> None:
    first, second = generate(SHAPE), generate(SHAPE)
    assert first.events.equals(second.events) and first.items.equals(second.items)
    other = generate(Shape(2_000, 1_200, 30_000, days=60, seed=8, end=END))
    assert not other.events.equals(first.events)


def test_sizes_are_exact_and_every_person_and_time_is_in_range(events: pd.DataFrame) -> None:
    items = generate(SHAPE).items
    assert len(events) == SHAPE.events and items.num_rows == SHAPE.items
    assert events.event_id.is_unique
    people = events.user_id.fillna(events.anonymous_id).str[1:].astype(int)
    assert people.nunique() == SHAPE.people
    start = pd.Timestamp(END) - pd.Timedelta(days=SHAPE.days)
    assert events.timestamp.min() >= start and events.timestamp.max() < pd.Timestamp(END)
    assert events.timestamp.is_monotonic_increasing  # a log, in time order
    # Nobody sees an item before it exists.
    created = items.to_pandas().set_index("item_id").created_at
    with_item = events[events.item_id.notna()]
    assert (with_item.timestamp.to_numpy() >= created[with_item.item_id].to_numpy()).all()
    assert (created > start).mean() == pytest.approx(0.25, abs=0.06)  # new items arrive


def test_the_funnel_narrows_and_each_step_follows_the_one_before(events: pd.DataFrame) -> None:
    counts = events.type.value_counts()
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    assert 0.01 < counts["purchase"] / counts["view"] < 0.06
    person = events.user_id.fillna(events.anonymous_id).str[1:]
    keyed = events.assign(person=person)
    for step, before in (("purchase", "add_to_cart"), ("add_to_cart", "click"), ("click", "view")):
        later = keyed[keyed.type == step].groupby(["person", "item_id"]).timestamp.min()
        earlier = keyed[keyed.type == before].groupby(["person", "item_id"]).timestamp.min()
        assert (earlier.reindex(later.index) <= later).all(), step
    purchases = events[events.type == "purchase"]
    assert (purchases.value > 0).all() and purchases.properties.notna().all()
    assert events[events.type != "purchase"].value.isna().all()


def test_anonymous_visitors_identify_once_and_are_known_afterwards(events: pd.DataFrame) -> None:
    identify = events[events.type == "identify"]
    assert identify.user_id.notna().all() and identify.anonymous_id.notna().all()
    assert identify.item_id.isna().all() and identify.anonymous_id.is_unique
    assert (identify.user_id.str[1:] == identify.anonymous_id.str[1:]).all()
    share = len(identify) / SHAPE.people
    assert share == pytest.approx(0.35 * 0.6, abs=0.04)
    moment = identify.set_index("anonymous_id").timestamp
    others = events[events.type != "identify"]
    anonymous = others[others.anonymous_id.notna()]
    assert anonymous.user_id.isna().all()  # before identifying: the anonymous id alone
    before = anonymous[anonymous.anonymous_id.isin(moment.index)]
    assert (before.timestamp.to_numpy() < moment[before.anonymous_id].to_numpy()).all()
    after = others[others.user_id.isin(identify.user_id)]
    known_at = identify.set_index("user_id").timestamp
    assert (after.timestamp.to_numpy() >= known_at[after.user_id].to_numpy()).all()
    never = set(others.anonymous_id.dropna()) - set(identify.anonymous_id)
    assert never  # some never identify


def test_activity_is_long_tailed_and_popularity_a_power_law(events: pd.DataFrame) -> None:
    person = events.user_id.fillna(events.anonymous_id).str[1:]
    per_person = person.value_counts().to_numpy()
    assert per_person.max() > 10 * np.median(per_person)
    views = events[events.type == "view"].item_id.value_counts().to_numpy()
    top_share = views[: len(views) // 10].sum() / views.sum()
    assert top_share > 0.4  # the top tenth of the items draws a large share of views


def test_recommenders_beat_popularity_on_it(events: pd.DataFrame) -> None:
    workload = generate(SHAPE)
    frame = workload_frame(workload.events, workload.items)
    chosen = {c.name: c for c in baselines()}
    picked = [chosen["MostPopular"], chosen["ItemKNN-cosine"], chosen["ALS"]]
    ndcg = {r.name: r.metrics["ndcg@10"] for r in run_protocol(picked, frame=frame)}
    assert ndcg["ItemKNN-cosine"] > 1.3 * ndcg["MostPopular"]  # 1.54x measured
    assert ndcg["ALS"] > 1.3 * ndcg["MostPopular"]  # 2.03x measured


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_the_files_import_without_a_rejection(tmp_path: Path, kind: str) -> None:
    out, home = tmp_path / "shop", tmp_path / "home"
    made = runner.invoke(
        app,
        ["generate", "--out", str(out), "--people", "300", "--items", "80", "--events", "3000",
         "--seed", "3", "--end", "2026-06-01T00:00:00", "--format", kind],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    for name in ("items", "events"):
        done = runner.invoke(
            app, ["--home", str(home), "import", name, str(out / f"{name}.{kind}")]
        )
        assert done.exit_code == 0, done.output
    engine = Engine.open(Settings(home=home))
    try:
        written = generate(Shape(300, 80, 3000, seed=3, end=datetime(2026, 6, 1, tzinfo=UTC)))
        buyer = (
            written.events.filter(pc.equal(written.events["type"], "purchase"))["user_id"]
            .drop_null()[0]
            .as_py()
        )
        profile = engine.profiles.get(buyer)
        assert profile.counts.get("purchase", 0) >= 1
        assert engine.catalog.get("i0") is not None
        assert engine.catalog.get("i0").categories == written.items["categories"][0].as_py()
        with engine.storage.read() as uow:
            assert uow.events.count() == 3000
            assert uow.quarantine.list(after_id=0, limit=10) == []
    finally:
        engine.close()


def test_too_few_events_for_the_people_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["generate", "--out", str(tmp_path), "--people", "100", "--events", "150"]
    )
    assert result.exit_code == 2 and "too few" in result.output
