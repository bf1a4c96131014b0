"""What the project says about itself: the README, the license, the package metadata."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import re
import sys
import tomllib
from pathlib import Path

from fastapi import FastAPI

import persona

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


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# Extras that a feature of the package needs (not the development or benchmark tools): code
# under src/ may import what they declare, only where that feature runs.
FEATURE_EXTRAS = ("spark",)


def declared(*extras: str) -> dict[str, str]:
    """Each dependency of pyproject.toml (normalized name) and its requirement text, with
    those of ``extras``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements: dict[str, str] = {}
    optional = [r for extra in extras for r in project["optional-dependencies"][extra]]
    for requirement in [*project["dependencies"], *optional]:
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert name is not None, requirement
        requirements[normalized(name.group())] = requirement
    return requirements


def imported_modules() -> dict[str, Path]:
    """Every top-level module that code under src/ imports, with a file that imports it."""
    found: dict[str, Path] = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def test_every_third_party_import_is_a_declared_dependency() -> None:
    providers = importlib.metadata.packages_distributions()
    dependencies = declared(*FEATURE_EXTRAS)
    missing = []
    for module, path in imported_modules().items():
        if module in sys.stdlib_module_names or module in ("persona", "__future__"):
            continue
        distributions = {normalized(d) for d in providers.get(module, [])}
        if not distributions & dependencies.keys():
            missing.append(f"{module} ({path.relative_to(ROOT)}; from {distributions or '?'})")
    assert not missing, missing


def test_the_fastapi_floor_has_the_features_the_app_uses() -> None:
    """``FastAPI(telemetry=...)`` (persona turns the framework's OpenTelemetry off) exists
    from FastAPI 0.142.0 on; an older release refuses the argument."""
    floor = re.search(r">=\s*([0-9.]+)", declared()["fastapi"])
    assert floor is not None
    assert tuple(int(part) for part in floor.group(1).split(".")) >= (0, 142)
    assert "telemetry" in inspect.signature(FastAPI).parameters


def test_the_distribution_name_is_ours_and_the_import_and_command_stay_persona() -> None:
    """`persona` on the package index is an unrelated project."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["name"] == persona.DISTRIBUTION == "persona-personalization"
    assert project["scripts"] == {"persona": persona.COMMAND}
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/persona"]
    assert f"`{persona.DISTRIBUTION}`" in README
