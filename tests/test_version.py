"""``flask_batch.__version__`` is the installed distribution's version, read on first use.

Why: bug reports and ``pip`` should agree on which release is running, so the version is
read from the package metadata (written from pyproject.toml), not kept in a second place.
Reading it imports importlib.metadata (about 15 ms), which ``import flask_batch`` need not
pay: the Flask-free middlewares are imported on every cold start.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import flask_batch

from .child import run_in_child

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_the_version_is_the_projects() -> None:
    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    assert flask_batch.__version__ == declared
    assert flask_batch.__version__ == importlib.metadata.version("flask-batch")


def test_importing_the_package_does_not_read_the_metadata() -> None:
    done = run_in_child(
        "import sys, flask_batch\n"
        "print('importlib.metadata' in sys.modules)\n"
        "print(flask_batch.__version__, 'importlib.metadata' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    version = importlib.metadata.version("flask-batch")
    assert done.stdout.split("\n")[:2] == ["False", f"{version} True"]
