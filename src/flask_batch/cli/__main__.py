"""``python -m flask_batch.cli``: the ``flask-batch`` command."""

from __future__ import annotations

from ._commands import main

main(prog_name="flask-batch")
