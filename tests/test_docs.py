"""The documentation cannot drift from the code: the site builds with warnings as errors, and
every Python example in README.md and docs/ compiles, and runs.

The convention (CONTRIBUTING.md, "Documentation"): each ```python block runs, the blocks of
one page in order in one namespace (a page is read top to bottom), against a real server of
the example API (examples/people_api.py) whose URL is ``base``; ``http://localhost:5000``
in a block stands for it. A block that cannot run here says so, with its reason, in an HTML
comment on the line right before it: ``<!-- not run: it needs a Django project's settings -->``.
Such a block is still compiled, and its imports checked (tests/test_public_api.py).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

import pytest
from flask import Flask

from tests.servers import live_server

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: A fenced Python block, indented or not (inside a list item).
BLOCK = re.compile(r"^(?P<indent> *)```python\n(?P<code>.*?)^(?P=indent)```$", re.M | re.S)
NOT_RUN = re.compile(r"^\s*<!-- not run: (?P<reason>.*?) -->$")
#: What the examples call the server they talk to.
EXAMPLE_ORIGIN = "http://localhost:5000"


@dataclass(frozen=True)
class Example:
    """One ```python block of a page: where it starts, its code, and why it does not run."""

    page: Path
    line: int
    code: str
    not_run: str | None

    def compiled(self) -> CodeType:
        return compile(self.code, f"{page_id(self.page)}:{self.line}", "exec")


def examples(page: Path) -> list[Example]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        before = text[: match.start()].removesuffix("\n").rpartition("\n")[2]
        marker = NOT_RUN.match(before)
        code = textwrap.dedent(match.group("code"))
        found.append(Example(page, line, code, marker.group("reason") if marker else None))
    return found


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def example_api() -> Flask:
    """A fresh app of examples/people_api.py, loaded from its file (examples/ is a folder of
    scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("people_api", ROOT / "examples" / "people_api.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: Flask = module.create_app()
    return app


@pytest.fixture
def base() -> Iterator[str]:
    with live_server(example_api()) as url:
        yield url


def test_the_pages_have_examples() -> None:
    assert sum(len(examples(page)) for page in PAGES) >= 40


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_example_compiles_and_says_why_it_does_not_run(page: Path) -> None:
    for example in examples(page):
        example.compiled()
        assert example.not_run != "", f"{page_id(page)}:{example.line}: say why it does not run"
    # A marker must stand right before a block: one anywhere else marks nothing.
    markers = len(re.findall(r"<!-- not run:", page.read_text(encoding="utf-8")))
    assert markers == sum(e.not_run is not None for e in examples(page)), page_id(page)


@pytest.mark.parametrize(
    "page", [page for page in PAGES if any(e.not_run is None for e in examples(page))], ids=page_id
)
def test_every_example_runs(page: Path, base: str) -> None:
    namespace: dict[str, object] = {"__name__": "__main__", "base": base}
    for example in examples(page):
        if example.not_run is None:
            code = example.code.replace(EXAMPLE_ORIGIN, base)
            exec(compile(code, f"{page_id(page)}:{example.line}", "exec"), namespace)


def test_a_broken_example_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n<!-- not run: it needs a database -->\n```python\nconnect()\n```\n\n"
        "- A list:\n\n  ```python\n  from flask_batch import nothing\n  ```\n",
        encoding="utf-8",
    )
    skipped, broken = examples(page)
    assert skipped.not_run == "it needs a database"
    assert broken.not_run is None
    assert broken.code == "from flask_batch import nothing\n"
    with pytest.raises(ImportError):
        exec(broken.compiled(), {})


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    """`make docs` in a temporary directory: a broken link between pages, an anchor that is
    not there, a page missing from the navigation, a docstring the reference cannot read; and
    the reference shows the docstrings' Sphinx roles as code (docs/griffe_roles.py)."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "index.html").is_file()
    reference = [page.read_text() for page in (tmp_path / "reference").rglob("*.html")]
    assert len(reference) == 6
    assert "flask_batch.client.Batching" in "".join(reference)
    assert not [role for page in reference for role in re.findall(r":(?:class|func|meth):", page)]
