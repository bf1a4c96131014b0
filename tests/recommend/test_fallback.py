"""The fallback chain: each stage answers or passes, a failing one is passed over."""

from __future__ import annotations

import pytest

from persona.recommend.answer import RecommendationQuery, RecommendationResult, RecommendedItem
from persona.recommend.fallback import FallbackChain, Shortfall

SHORTFALL = Shortfall(RecommendationQuery(person_id="p"), [], None, "latency budget exceeded")


class Failing:
    name = "failing"

    def answer(self, shortfall: Shortfall) -> RecommendationResult | None:
        raise RuntimeError("broken")


class Passing:
    name = "passing"

    def answer(self, shortfall: Shortfall) -> RecommendationResult | None:
        return None


class Answering:
    name = "answering"

    def answer(self, shortfall: Shortfall) -> RecommendationResult | None:
        return RecommendationResult(
            [RecommendedItem("i1", 0.0, [self.name])], self.name, None, shortfall.reason
        )


def test_the_first_stage_that_answers_answers(caplog: pytest.LogCaptureFixture) -> None:
    found = FallbackChain([Failing(), Passing(), Answering()]).answer(SHORTFALL)
    assert (found.source, found.reason) == ("answering", "latency budget exceeded")
    assert "the failing fallback failed" in caplog.text


def test_a_chain_that_cannot_answer_says_so_with_an_empty_list() -> None:
    found = FallbackChain([Failing(), Passing()]).answer(SHORTFALL)
    assert (found.items, found.source, found.reason) == ([], "none", "latency budget exceeded")
