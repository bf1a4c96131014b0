"""What the project says about itself: the README, the license, the package metadata."""

from __future__ import annotations

import hashlib
import re
import tomllib
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


# SHA-256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the canonical text.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_the_license_is_the_full_apache_2_text_the_package_declares() -> None:
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
