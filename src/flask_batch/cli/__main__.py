"""``python -m flask_batch.cli``: the ``flask-batch`` command."""

from __future__ import annotations

from . import run

run()
