"""Experiment assignment: a pure, stable, well-spread function of (experiment, version, unit)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from persona.decide.assignment import (
    ExperimentSplit,
    Variant,
    assign,
    split_of,
    unit_uniform,
)
from persona.errors import InvalidExperimentError

UNITS = [f"user-{i}" for i in range(100_000)]


def three_way(version: int = 1, holdout_share: float = 0.0) -> ExperimentSplit:
    return split_of(
        "homepage-hero", version, [("control", 5), ("a", 3), ("b", 2)], holdout_share=holdout_share
    )


def test_same_inputs_give_the_same_answer() -> None:
    split = three_way()
    first = [assign(split, unit).variant for unit in UNITS[:1000]]
    again = [assign(three_way(), unit).variant for unit in UNITS[:1000]]
    assert first == again


def test_assignment_is_the_same_in_a_fresh_process() -> None:
    split = three_way(holdout_share=0.1)
    units = UNITS[:500]
    here = [[a.variant, a.in_holdout] for a in (assign(split, u) for u in units)]
    script = (
        "import json, sys\n"
        "from persona.decide.assignment import assign, split_of\n"
        "split = split_of('homepage-hero', 1, [('control', 5), ('a', 3), ('b', 2)],"
        " holdout_share=0.1)\n"
        "units = json.load(sys.stdin)\n"
        "print(json.dumps([[assign(split, u).variant, assign(split, u).in_holdout]"
        " for u in units]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(units),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert json.loads(done.stdout) == here


def test_hash_follows_the_documented_encoding() -> None:
    # A change of encoding or salt would silently reshuffle every running experiment.
    digest = hashlib.blake2b(digest_size=8, person=b"persona.split")
    for part in (b"exp", b"7", b"unit-42"):
        digest.update(len(part).to_bytes(8, "big") + part)
    expected = (int.from_bytes(digest.digest(), "big") >> 11) / 2**53
    assert unit_uniform("exp", 7, "unit-42", salt=b"persona.split") == expected
    assert expected != unit_uniform("exp", 7, "unit-42", salt=b"persona.holdout")
    assert unit_uniform("ab", 1, "c", salt=b"s") != unit_uniform("a", 1, "bc", salt=b"s")


def test_split_matches_the_configured_weights() -> None:
    split = three_way()
    counts = Counter(assign(split, unit).variant for unit in UNITS)
    observed = [counts["control"], counts["a"], counts["b"]]
    expected = [len(UNITS) * share for share in (0.5, 0.3, 0.2)]
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_zero_weight_variant_gets_no_units() -> None:
    split = split_of("e", 1, [("control", 1), ("paused", 0), ("b", 1)])
    counts = Counter(assign(split, unit).variant for unit in UNITS[:20_000])
    assert counts["paused"] == 0
    assert abs(counts["control"] - 10_000) < 4 * np.sqrt(20_000 * 0.25)


def test_holdout_share_and_control_for_held_out_units() -> None:
    split = three_way(holdout_share=0.1)
    assignments = [assign(split, unit) for unit in UNITS]
    held_out = [a for a in assignments if a.in_holdout]
    sd = np.sqrt(len(UNITS) * 0.1 * 0.9)
    assert abs(len(held_out) - 10_000) < 4 * sd
    assert {a.variant for a in held_out} == {"control"}


def test_holdout_is_independent_of_the_split() -> None:
    with_holdout = three_way(holdout_share=0.2)
    without = three_way()
    table = np.zeros((2, 3))
    names = ["control", "a", "b"]
    for unit in UNITS:
        held = assign(with_holdout, unit).in_holdout
        table[int(held), names.index(assign(without, unit).variant)] += 1
    # The variant a unit would get says nothing about whether it is held out.
    assert stats.chi2_contingency(table).pvalue > 0.001
    # Outside the holdout, units keep the variant they would have had without one.
    for unit in UNITS[:2000]:
        got = assign(with_holdout, unit)
        if not got.in_holdout:
            assert got.variant == assign(without, unit).variant


def test_version_change_reshuffles() -> None:
    v1, v2 = split_of("e", 1, [("c", 1), ("t", 1)]), split_of("e", 2, [("c", 1), ("t", 1)])
    changed = sum(assign(v1, u).variant != assign(v2, u).variant for u in UNITS[:20_000])
    # Two independent fair coins differ half the time.
    assert abs(changed / 20_000 - 0.5) < 0.02


def test_experiments_are_independent_of_each_other() -> None:
    first, second = split_of("e1", 1, [("c", 1), ("t", 1)]), split_of("e2", 1, [("c", 1), ("t", 1)])
    same = sum(assign(first, u).variant == assign(second, u).variant for u in UNITS[:20_000])
    assert abs(same / 20_000 - 0.5) < 0.02


def test_custom_control_serves_the_holdout() -> None:
    split = split_of("e", 1, [("a", 1), ("base", 1)], holdout_share=0.5, control="base")
    assert split.control_variant == "base"
    held = [assign(split, u) for u in UNITS[:200]]
    assert all(a.variant == "base" for a in held if a.in_holdout)


@pytest.mark.parametrize(
    ("variants", "holdout", "control"),
    [
        ((), 0.0, None),
        ((Variant("a", 1), Variant("a", 1)), 0.0, None),
        ((Variant("a", -1), Variant("b", 1)), 0.0, None),
        ((Variant("a", 0), Variant("b", 0)), 0.0, None),
        ((Variant("a", float("nan")),), 0.0, None),
        ((Variant("a", 1),), 1.0, None),
        ((Variant("a", 1),), -0.1, None),
        ((Variant("a", 1),), 0.0, "missing"),
    ],
)
def test_unusable_splits_are_refused(
    variants: tuple[Variant, ...], holdout: float, control: str | None
) -> None:
    with pytest.raises(InvalidExperimentError):
        ExperimentSplit("e", 1, variants, holdout_share=holdout, control=control)


@given(
    weights=st.lists(st.floats(0, 1e6), min_size=1, max_size=6).filter(lambda w: sum(w) > 0),
    unit=st.text(max_size=40),
    version=st.integers(0, 2**31),
)
def test_every_unit_gets_a_variant_with_positive_weight(
    weights: list[float], unit: str, version: int
) -> None:
    split = split_of("e", version, [(f"v{i}", w) for i, w in enumerate(weights)])
    got = assign(split, unit)
    assert 0.0 <= got.bucket < 1.0
    assert split.shares[got.variant] > 0
