"""The layers of the clients, and what each may import (docs/design.md section 4).

The core (``client/_core/``) decides everything about a batch exchange and does no I/O; the
drivers (``client/_drivers.py``) do the I/O for any front end; each front end adapts one
library and knows nothing of the other. Checked on the source, so a stray import fails here
before it couples the layers.

The command line (``cli/``) is a client application on top: its ``.http`` reader does no I/O
and knows nothing of the package, and the command sends through the requests front end, so
that it never writes a batch of its own.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parent.parent / "src" / "flask_batch" / "client"
CORE = sorted((CLIENT / "_core").glob("*.py"))
CLI = CLIENT.parent / "cli"
#: What moves bytes, runs concurrently, or is a front end's library: none of it in the core.
NOT_IN_CORE = {
    "asyncio",
    "concurrent",
    "http",
    "httpx",
    "io",
    "queue",
    "requests",
    "selectors",
    "socket",
    "subprocess",
    "threading",
    "urllib3",
}
#: Each front end's files, and the libraries and files of the other one it must not import.
FRONT_ENDS = {
    "requests": (
        ["requests.py", "_requests_messages.py", "_requests_prepare.py"],
        {"httpx", ".httpx", "._httpx_"},
    ),
    "httpx": (
        ["httpx.py", "_httpx_base.py", "_httpx_messages.py", "_httpx_scope.py"],
        {"requests", "urllib3"},
    ),
}


def imported(path: Path) -> set[str]:
    """What ``path`` imports: absolute modules by name, relative ones with their dots."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda path: path.name)
def test_the_core_does_no_io_and_knows_no_front_end(path: Path) -> None:
    for name in imported(path):
        module = name.lstrip(".")
        dots = len(name) - len(module)
        if dots:  # its own modules (one dot) and the wire core (three) only
            assert dots == 1 or (dots == 3 and module.startswith("wire")), f"{path.name}: {name}"
        else:
            assert module.split(".")[0] not in NOT_IN_CORE, f"{path.name} imports {name}"


def test_the_drivers_serve_every_front_end_alike() -> None:
    for name in imported(CLIENT / "_drivers.py"):
        assert name.split(".")[0] not in {"requests", "httpx", "urllib3"}, name
        if name.startswith("."):
            assert name.startswith("._core."), name


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_a_front_end_knows_nothing_of_the_other(front_end: str) -> None:
    files, forbidden = FRONT_ENDS[front_end]
    for file in files:
        for name in imported(CLIENT / file):
            assert not name.startswith(tuple(forbidden)), f"{file} imports {name}"


@pytest.mark.parametrize(
    "name", ["flask_batch.client", "flask_batch.client.requests", "flask_batch.client.httpx"]
)
def test_a_public_client_module_declares_exactly_its_public_names(name: str) -> None:
    """``__all__`` names what the module defines without an underscore, and what it takes
    from the client's other modules (the core's shared errors, a front end's own classes,
    the requests client that the package imports when first asked)."""
    module = importlib.import_module(name)
    declared = module.__all__
    assert len(declared) == len(set(declared))
    assert all(hasattr(module, exported) for exported in declared)
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    defined = {
        name
        for node in tree.body
        for name in (
            [node.name]
            if isinstance(node, ast.ClassDef | ast.FunctionDef)
            else [t.id for t in node.targets if isinstance(t, ast.Name)]
            if isinstance(node, ast.Assign)
            else []
        )
        if not name.startswith("_")
    }
    statements = [
        *tree.body,
        *(item for node in tree.body if isinstance(node, ast.If) for item in node.body),
    ]
    taken = {
        alias.asname or alias.name
        for node in statements
        if isinstance(node, ast.ImportFrom) and node.level
        for alias in node.names
    }
    assert defined <= set(declared)
    assert set(declared) <= defined | taken


def test_the_http_file_reader_does_no_io_and_knows_nothing_of_the_package() -> None:
    for name in imported(CLI / "_http_file.py"):
        assert not name.startswith("."), name
        assert name.split(".")[0] not in NOT_IN_CORE | {"os", "pathlib", "click"}, name


def test_the_command_line_sends_through_the_requests_front_end_only() -> None:
    """The command takes the client's shared names, the requests front end and the core's
    reading of a discovery: no batch encoder, no httpx, nothing of the server side."""
    own = {".", "._commands", "._http_file"}
    allowed = {"..", "..client", "..client.requests", "..client._core.limits", *own}
    for file in ("__init__.py", "__main__.py", "_commands.py"):
        for name in imported(CLI / file):
            if name.startswith("."):
                assert name in allowed, f"{file} imports {name}"
            else:
                assert name.split(".")[0] not in {"httpx", "flask", "werkzeug"}, name
