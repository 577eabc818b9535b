"""The framework examples run with one command each: ``--demo`` serves the example on a free
port of 127.0.0.1, sends one batch and prints every answer. Run as subprocesses, exactly as a
reader would run them (and so that each example's Django settings stay its own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXPECTED = [
    "POST   /todos     -> 201",
    "GET    /todos     -> 200 [",
    "GET    /todos/99  -> 404",
    "DELETE /todos/1   -> 401",
]


@pytest.mark.parametrize("example", ["flask_app.py", "django_app.py", "fastapi_app.py"])
def test_the_example_answers_a_batch(example: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example), "--demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("/batch with 4 requests, one round trip:")
    for line, expected in zip(lines[1:], EXPECTED, strict=True):
        assert line.strip().startswith(expected), line
    assert '"buy milk"' in lines[2]
    assert "Traceback" not in done.stderr
