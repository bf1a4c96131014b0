"""The shape of the code: which parts of persona may import which.

Each subpackage of ``persona`` (``ingest``, ``storage``, ``api`` ...) and each top-level module
(``engine``, ``settings`` ...) is a node; an import anywhere in one of them, at module level or
inside a function, is an edge to the node it names. The graph must stay acyclic, so that every
part can be read, tested and replaced knowing only the parts below it.
"""

from __future__ import annotations

import ast
import importlib
import itertools
from collections import defaultdict
from pathlib import Path

import persona

ROOT = Path(persona.__file__).parent
SHELLS = {"api", "cli"}
WEB_AND_TERMINAL = {"fastapi", "starlette", "uvicorn", "typer", "rich"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, as absolute dotted names."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                names.add(f"{prefix}.{node.module}" if node.module else prefix)
                if not node.module:  # ``from . import x``: x is a module of the package
                    names.update(f"{prefix}.{alias.name}" for alias in node.names)
            elif node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _node(module: str) -> str | None:
    """The part of persona a module belongs to (None outside persona or for ``persona``)."""
    parts = module.split(".")
    if parts[0] != "persona" or len(parts) < 2:
        return None
    name = parts[1]
    if (ROOT / name).is_dir() or (ROOT / f"{name}.py").is_file():
        return name
    return None


def _graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    edges: dict[str, set[str]] = defaultdict(set)
    sites: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in sorted(ROOT.rglob("*.py")):
        source = _node(_module_name(path))
        if source is None:
            continue
        edges.setdefault(source, set())
        for imported in _imported(path):
            target = _node(imported)
            if target is not None and target != source:
                edges[source].add(target)
                sites[(source, target)].add(str(path.relative_to(ROOT)))
    return edges, sites


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(edges.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(edges):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_package_import_graph_is_acyclic() -> None:
    edges, sites = _graph()
    cycle = _find_cycle(edges)
    if cycle:
        steps = [
            f"  {a} -> {b}: {', '.join(sorted(sites[(a, b)]))}"
            for a, b in itertools.pairwise(cycle)
        ]
        raise AssertionError("import cycle:\n" + "\n".join(steps))


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions() -> None:
    edges, _ = _graph()
    # The command line imports the app factory inside ``serve`` only (start-up time).
    assert "api" in edges["cli"]
    assert "engine" in edges["api"]


def test_domains_know_nothing_of_the_shells() -> None:
    """The web layer and the command line call the domains, never the other way round; only
    they (and ``__main__``) open the engine, the composition root."""
    offenders: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        node = _node(_module_name(path))
        if node is None or node in {*SHELLS, "__main__"}:
            continue
        for imported in _imported(path):
            if imported.split(".")[0] in WEB_AND_TERMINAL or _node(imported) in {
                *SHELLS,
                "engine",
            } - {node}:
                offenders.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not offenders, "\n".join(offenders)


def test_storage_imports_no_domain() -> None:
    """Storage sits under every domain: it may use the shared vocabulary (top-level modules
    such as ``documents`` or ``clock``), never a domain package."""
    edges, sites = _graph()
    packages = {target for target in edges["storage"] if (ROOT / target).is_dir()}
    assert not packages, {target: sites[("storage", target)] for target in packages}


def test_only_storage_and_the_composition_root_know_sql() -> None:
    """Every domain reaches its data through the storage protocols and records; SQL, tables
    and dialects live in ``storage`` (and ``engine`` picks the implementation)."""
    behind_the_seam = ("sqlalchemy", "alembic", "persona.storage.sql", "persona.storage.tables")
    offenders: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        if _node(_module_name(path)) in {"storage", "engine"}:
            continue
        offenders += [
            f"{path.relative_to(ROOT)} imports {name}"
            for name in _imported(path)
            if name.startswith(behind_the_seam)
        ]
    assert not offenders, "\n".join(offenders)


def _from_imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every absolute ``from persona... import name`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def test_packages_use_each_other_only_through_their_public_surface() -> None:
    """A package's ``__init__`` names what the rest of persona may use (``__all__``); an import
    from another package of anything else fails here. The shells (api, cli) name none: nothing
    builds on them."""
    offenders: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        source = _node(_module_name(path))
        for module, name in _from_imports(path):
            target = _node(module)
            if target is None or target == source or not (ROOT / target).is_dir():
                continue
            if target in SHELLS:
                continue
            public = importlib.import_module(f"persona.{target}").__all__
            if name not in public:
                offenders.append(f"{path.relative_to(ROOT)}: {name} from {module}")
    assert not offenders, "\n".join(offenders)


def test_every_public_name_exists() -> None:
    for package in sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()):
        if package in SHELLS:
            continue
        module = importlib.import_module(f"persona.{package}")
        missing = [name for name in getattr(module, "__all__", []) if not hasattr(module, name)]
        assert not missing, (package, missing)
