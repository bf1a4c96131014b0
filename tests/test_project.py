"""What the project says about itself: the README, the license, the package metadata."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_readme_intro_describes_what_exists() -> None:
    intro = README.split("\n## ", 1)[0]
    assert "releases to come" not in intro and "coming" not in intro
    for feature in ("segments", "clusters", "propensit", "placements", "A/B", "bandits"):
        assert feature in intro, feature
    for page in ("segments", "predictions", "experiments", "privacy"):
        assert f"(docs/{page}.md)" in intro, page


def test_every_local_link_of_the_readme_resolves() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert local
    for link in local:
        assert (ROOT / link).exists(), link
