"""The rule language: what parses into which tree, and where mistakes are reported."""

from __future__ import annotations

import pytest

from persona.errors import RuleSyntaxError
from persona.rules import (
    And,
    Comparison,
    Count,
    Did,
    EventQuery,
    Field,
    Membership,
    Not,
    Or,
    SegmentRef,
    parse_rule,
    references,
    to_text,
)

DAY = 86_400_000


def test_the_examples_of_the_issue_parse_into_the_expected_trees() -> None:
    assert parse_rule(
        'did(view, item = "42") within 7d and did(add_to_cart) within 7d'
        " and not did(purchase) within 7d"
    ) == And(
        (
            Did(EventQuery("view", item="42", window_ms=7 * DAY)),
            Did(EventQuery("add_to_cart", window_ms=7 * DAY)),
            Not(Did(EventQuery("purchase", window_ms=7 * DAY))),
        )
    )
    assert parse_rule('count(view, category = "Comedy") within 14d >= 3') == Comparison(
        Count(EventQuery("view", category="Comedy", window_ms=14 * DAY)), ">=", 3
    )
    assert parse_rule('profile.monetary > 100 and traits.country in ["FR", "BE"]') == And(
        (
            Comparison(Field("profile", ("monetary",)), ">", 100),
            Membership(Field("traits", ("country",)), ("FR", "BE")),
        )
    )
    assert parse_rule('profile.last_seen_days <= 30 and segment("high_value")') == And(
        (Comparison(Field("profile", ("last_seen_days",)), "<=", 30), SegmentRef("high_value"))
    )


def test_precedence_not_then_and_then_or_and_parentheses_override() -> None:
    a, b, c = (Did(EventQuery(t)) for t in ("a", "b", "c"))
    assert parse_rule("did(a) or did(b) and did(c)") == Or((a, And((b, c))))
    assert parse_rule("(did(a) or did(b)) and did(c)") == And((Or((a, b)), c))
    assert parse_rule("not did(a) and did(b)") == And((Not(a), b))
    assert parse_rule("not (did(a) and did(b))") == Not(And((a, b)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("did(view) within 90m", Did(EventQuery("view", window_ms=90 * 60_000))),
        ("did(view) within 12h", Did(EventQuery("view", window_ms=12 * 3_600_000))),
        ("did(view)", Did(EventQuery("view"))),
        ('did("page view")', Did(EventQuery("page view"))),
        (
            'did(view, item = "1", category = "Drama")',
            Did(EventQuery("view", item="1", category="Drama")),
        ),
        (
            'profile.affinity["Sci-Fi"] >= 0.5',
            Comparison(Field("profile", ("affinity", "Sci-Fi")), ">=", 0.5),
        ),
        ("profile.count.purchase = 0", Comparison(Field("profile", ("count", "purchase")), "=", 0)),
        ("profile.scores.churn > 0.8", Comparison(Field("profile", ("scores", "churn")), ">", 0.8)),
        ("traits.vip == true", Comparison(Field("traits", ("vip",)), "=", True)),
        (
            'traits.address.zip != "75001"',
            Comparison(Field("traits", ("address", "zip")), "!=", "75001"),
        ),
        ('context.device = "mobile"', Comparison(Field("context", ("device",)), "=", "mobile")),
        ("traits.age < -1.5", Comparison(Field("traits", ("age",)), "<", -1.5)),
        ("traits.did = 1", Comparison(Field("traits", ("did",)), "=", 1)),
        ("profile.sessions in [1, 2]", Membership(Field("profile", ("sessions",)), (1, 2))),
    ],
)
def test_valid_rules(text: str, expected: object) -> None:
    rule = parse_rule(text)
    assert rule == expected
    assert parse_rule(to_text(rule)) == rule  # rendering round-trips


def test_references_are_collected() -> None:
    rule = parse_rule('segment("a") or (not segment("b") and did(view))')
    assert references(rule) == {"a", "b"}


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("profile.monetary > > 100", 1, 20, "unexpected '>'"),
        ("did(view within 7d", 1, 10, "expected ')' or ','"),
        ("did(view", 1, 9, "end of the rule"),
        ("did(view) & did(click)", 1, 11, "unexpected character '&'"),
        ("profile.foo > 1", 1, 1, "unknown profile field 'foo'"),
        ("profile.count > 1", 1, 1, "profile.count takes one key"),
        ("customer.age > 1", 1, 1, "unknown field 'customer'"),
        ('count(view) >= "three"', 1, 1, "compare it with a number"),
        ('profile.monetary = "a lot"', 1, 1, "compare it with a number"),
        ('traits.plan < "gold"', 1, 13, "< compares numbers"),
        ("did(view) within 0d", 1, 18, "longer than 0"),
        ("did(view) within 4000d", 1, 18, "at most 3650d"),
        ('did(view, colour = "red")', 1, 11, "unknown event filter 'colour'"),
        ('did(view, item > "1")', 1, 16, "compares with ="),
        ('did(view, item = "1", item = "2")', 1, 23, "given twice"),
        ('traits.x in [1, "a"]', 1, 1, "all numbers or all strings"),
        ('segment("Not A Name")', 1, 1, "not a segment name"),
        ("did(view) and\n  profile.monetary >", 2, 21, "end of the rule"),
        ("did(view) and\n  traits.x ! 3", 2, 12, "unexpected character '!'"),
        ("", 1, 1, "empty"),
    ],
)
def test_invalid_rules_point_at_the_mistake(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)
    error = caught.value
    assert words in error.detail
    assert (error.extra["line"], error.extra["column"]) == (line, column)
    source_line, caret = error.extra["excerpt"].split("\n")
    assert source_line == (text.splitlines() or [""])[line - 1]
    assert caret == " " * (column - 1) + "^"
    assert error.status == 422
    assert error.code == "invalid_rule"


def test_oversized_and_deeply_nested_rules_are_refused() -> None:
    with pytest.raises(RuleSyntaxError, match="at most 4000 characters"):
        parse_rule("did(view) or " * 400 + "did(view)")
    with pytest.raises(RuleSyntaxError, match="nests"):
        parse_rule("not " * 40 + "did(view)")
