"""The public API is what the modules declare (``__all__``) and what the docs use."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import pytest

import flask_batch
from tests.test_docs import PAGES

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "flask_batch"


def modules() -> list[str]:
    """Every module of the package whose name does not start with an underscore."""
    found = ["flask_batch"]
    for info in pkgutil.walk_packages(flask_batch.__path__, "flask_batch."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def defined_names(name: str) -> set[str]:
    """The public names a module defines at its top level (not those it imports)."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    names: set[str] = set()
    for node in tree.body:
        nodes = node.body if isinstance(node, ast.If) else [node]
        for item in nodes:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(item.name)
            elif isinstance(item, ast.Assign):
                names.update(t.id for t in item.targets if isinstance(t, ast.Name))
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                names.add(item.target.id)
    return {n for n in names if not n.startswith("_") and n != "logger"}


def imported_from(name: str) -> dict[str, str]:
    """Each name a module imports at its top level, and the module it comes from."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    package = name.rpartition(".")[0]
    found: dict[str, str] = {}
    for node in ast.parse(Path(module.__file__).read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            found.update({alias.asname or alias.name: base for alias in node.names})
    return found


#: Names a public module re-exports from another public one, on purpose: the transaction
#: hook's API names the group it is given, which the wire model defines (every member of a
#: group carries it, and the wire layer cannot import the hook's module).
SECOND_HOMES = {"flask_batch.transactions": {"Group"}}


@pytest.mark.parametrize("name", modules())
def test_every_public_module_declares_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    declared = getattr(module, "__all__", None)
    assert declared is not None, f"{name} has no __all__"
    assert len(declared) == len(set(declared))
    for exported in declared:
        assert hasattr(module, exported), f"{name}.__all__ names {exported}, which it lacks"
    if name == "flask_batch":  # the package re-exports the names of its modules
        return
    defined = defined_names(name)
    assert defined <= set(declared), f"{name} defines, undeclared, {defined - set(declared)}"
    if module.__file__ is not None and module.__file__.endswith("__init__.py"):
        return  # a package gathers the names of its modules
    for exported in set(declared) - defined - SECOND_HOMES.get(name, set()):
        # A re-export gives a public home to a name of a private module (the clients'
        # core); a name whose module is public already is used from there.
        home = imported_from(name)[exported]
        assert any(part.startswith("_") for part in home.split(".")), (
            f"{name} re-exports {exported} from {home}, a public module"
        )


def test_the_package_exports_what_the_readme_says() -> None:
    assert set(flask_batch.__all__) >= {"add_batch_route", "Batch", "Limits", "BatchError"}


IMPORT = re.compile(r"^\s*from (flask_batch[\w.]*) import ([\w, ]+?)(?:\s+#.*)?$", re.MULTILINE)


def test_every_import_in_the_docs_works() -> None:
    """What the README and the pages of docs/ import exists where they import it from, in the
    examples that run and in those that cannot (tests/test_docs.py)."""
    imports = [m for path in PAGES for m in IMPORT.finditer(path.read_text())]
    assert imports
    for match in imports:
        module = importlib.import_module(match.group(1))
        for name in (n.split(" as ")[0].strip() for n in match.group(2).split(",")):
            assert name in getattr(module, "__all__", dir(module)), f"{match.group(0).strip()}"
