"""Rules shared by the segment benchmarks: a realistic mix over every construct of the language."""

from __future__ import annotations

CATEGORIES = ["Comedy", "Drama", "Action", "Horror", "Romance", "Sci-Fi", "Documentary", "Kids"]
COUNTRIES = ["FR", "BE", "DE", "ES", "IT", "NL"]


def rule_mix(n: int) -> list[tuple[str, str]]:
    """``n`` (name, rule) pairs; later rules may refer to earlier ones."""
    templates = [
        "did(view) within {w}d",
        'count(view, category = "{c}") within {w}d >= {k}',
        "did(add_to_cart) within {w}d and not did(purchase) within {w}d",
        'profile.monetary > {m} and traits.country in ["{x}", "{y}"]',
        "profile.last_seen_days <= {w} and profile.frequency >= 1",
        'did(view, item = "i{k}") within {w}d or profile.affinity["{c}"] > 0.5',
        "count(purchase) within {w}d >= {k} or profile.sessions > {k}",
        'traits.plan = "gold" and not did(view) within {w}d',
        "profile.count.view >= {m} and profile.first_seen_days > {w}",
        'segment("s{prev}") and did(click) within {w}d',
    ]
    rules = []
    for i in range(n):
        template = templates[i % len(templates)]
        if "{prev}" in template and i < len(templates):
            template = templates[0]
        rules.append(
            (
                f"s{i}",
                template.format(
                    w=[1, 7, 14, 30, 90, 365][i % 6],
                    c=CATEGORIES[i % len(CATEGORIES)],
                    k=1 + i % 3,
                    m=[5, 20, 100][i % 3],
                    x=COUNTRIES[i % len(COUNTRIES)],
                    y=COUNTRIES[(i + 1) % len(COUNTRIES)],
                    prev=i - len(templates) + 1 if i >= len(templates) else 0,
                ),
            )
        )
    return rules
