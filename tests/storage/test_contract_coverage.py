"""Every store a unit of work offers is in the storage contract suite, every method of it used
there: a new store, or a new method, cannot ship without running on every backend."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from persona.storage.protocols import Storage, UnitOfWork

CONTRACT = sorted(Path(__file__).parent.glob("test_contract*.py"))


def _stores() -> dict[str, type]:
    """The protocol of each store a ``UnitOfWork`` offers, by property name."""
    found: dict[str, type] = {}
    for name, member in vars(UnitOfWork).items():
        if isinstance(member, property) and member.fget is not None:
            returned = typing.get_type_hints(member.fget)["return"]
            if getattr(returned, "_is_protocol", False):  # a store, not a flag
                found[name] = returned
    return found


def _methods(protocol: type) -> set[str]:
    return {
        name
        for name, member in vars(protocol).items()
        if callable(member) and not name.startswith("_")
    }


def _test_classes() -> dict[str, set[str]]:
    """Each ``Test...`` class of the contract suite, with the attribute names its code calls."""
    classes: dict[str, set[str]] = {}
    for path in CONTRACT:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                classes[node.name] = {
                    call.func.attr
                    for call in ast.walk(node)
                    if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                }
    return classes


def test_every_store_has_a_contract_class_that_calls_each_of_its_methods() -> None:
    classes = _test_classes()
    stores = _stores()
    assert {"events", "profiles", "decisions", "audit"} <= set(stores)
    missing: list[str] = []
    for protocol in stores.values():
        called = classes.get(f"Test{protocol.__name__}")
        if called is None:
            missing.append(f"no class Test{protocol.__name__}")
            continue
        missing += [f"{protocol.__name__}.{m}" for m in sorted(_methods(protocol) - called)]
    assert not missing, missing


def test_every_storage_method_is_called_by_the_contract_suite() -> None:
    called = set().union(*_test_classes().values())
    for path in CONTRACT:  # module-level tests too
        called |= {
            node.func.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        }
    assert not _methods(Storage) - called, _methods(Storage) - called
