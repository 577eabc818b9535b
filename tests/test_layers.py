"""The layers of the package, and what each may import (docs/design.md section 4).

The protocol core (``wire/``) does no I/O and knows no framework; the execution layer runs
batches without knowing the framework; the server adapters move bytes for WSGI and ASGI;
the Flask extension sits on the WSGI adapter. Each may import only the layers below it. The
integrations (``integrations/``), on top, each import their database library and the hook's
API (``transactions.py``); nothing else imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "flask_batch"

#: Each module of the server side, by layer (lowest first); the clients and the command line
#: (cli/, a client application) are checked apart, in test_client_layers.py.
LAYERS: dict[str, tuple[str, ...]] = {
    "wire": tuple(
        f"wire.{path.stem}"
        for path in sorted((SOURCE / "wire").glob("*.py"))
        if path.stem != "__init__"
    ),
    "execution": (
        "transactions",
        "answers",
        "schedule",
        "groups",
        "execution",
        "targets",
        "references",
        "part_headers",
        "conventions",
        "intake",
        "options",
        "openapi",
        "tracing",
        "observe",
        "signals",
    ),
    "adapters": ("wsgi_parts", "wsgi", "asgi_parts", "asgi"),
    "flask": ("flask",),
    "integrations": tuple(
        f"integrations.{path.stem}"
        for path in sorted((SOURCE / "integrations").glob("*.py"))
        if path.stem != "__init__"
    ),
}
#: The library each integration is for (each imports its own, and comes with an extra).
INTEGRATIONS = {
    "integrations.sqlalchemy": "sqlalchemy",
    "integrations.sqlalchemy_asyncio": "sqlalchemy",
    "integrations.flask_sqlalchemy": "flask_sqlalchemy",
    "integrations.django": "django",
}
#: Libraries no module of the server side below the Flask extension may import.
FRAMEWORKS = {"flask", "werkzeug", "requests", "httpx", "starlette", "django"}
#: Standard modules that do I/O or run concurrently: not in the protocol core.
IO = {"socket", "asyncio", "threading", "concurrent", "subprocess", "selectors", "io"}


def imports(module: str) -> set[str]:
    """The modules ``module`` imports (package-relative ones as ``flask_batch.x``)."""
    path = SOURCE / (module.replace(".", "/") + ".py")
    package = module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                found.add(".".join(["flask_batch", *base, *(node.module or "").split(".")]))
            elif node.module:
                found.add(node.module)
    return {name.rstrip(".") for name in found}


def layer_of(module: str) -> int:
    for rank, members in enumerate(LAYERS.values()):
        if module in members:
            return rank
    raise LookupError(module)


ALL = [module for members in LAYERS.values() for module in members]


def test_every_server_module_has_a_layer() -> None:
    on_disk = {
        str(path.relative_to(SOURCE).with_suffix("")).replace("/", ".")
        for path in SOURCE.rglob("*.py")
        if path.name != "__init__.py"
        and not path.is_relative_to(SOURCE / "client")
        and not path.is_relative_to(SOURCE / "cli")
    }
    assert on_disk == set(ALL)


@pytest.mark.parametrize("module", ALL)
def test_a_module_imports_only_the_layers_below_it(module: str) -> None:
    rank = layer_of(module)
    for name in imports(module):
        top = name.split(".")[0]
        if rank < layer_of("flask"):
            assert top not in FRAMEWORKS, f"{module} imports {name}"
        if rank == 0:
            assert top not in IO, f"the protocol core's {module} imports {name}"
        if top == "flask_batch":
            inner = name.removeprefix("flask_batch.")
            assert not inner.startswith("client"), f"{module} imports the client: {name}"
            if inner in ALL:
                assert layer_of(inner) <= rank, f"{module} imports {name}, a layer above it"


@pytest.mark.parametrize("module", LAYERS["integrations"])
def test_an_integration_imports_its_library_and_only_the_hook_api(module: str) -> None:
    found = imports(module)
    assert INTEGRATIONS[module] in {name.split(".")[0] for name in found}
    for name in found:
        inner = name.removeprefix("flask_batch.")
        if inner != name:
            assert inner == "transactions" or inner in INTEGRATIONS, f"{module} imports {name}"
