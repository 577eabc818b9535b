"""The ``flask-batch`` command line: ``flask-batch send FILE.http --url URL`` sends the
requests of a ``.http`` file as one batch and prints each answer; ``flask-batch describe
URL`` prints what a batch endpoint supports and its limits (docs/clients/cli.md).

It is a client application, on the requests front end (:class:`~flask_batch.client.Batching`),
and needs the ``client`` extra; ``_http_file`` reads the ``.http`` format without I/O.
:func:`run` is the installed command; :data:`main`, the Click group, is imported on first
use, so that the command can say what to install when the extra is missing.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._commands import main

__all__ = ["main", "run"]


def run() -> None:
    """The ``flask-batch`` command: :data:`main`, or what to install if its libraries are
    missing (``pip install --no-deps flask-batch`` leaves out requests, even Click)."""
    try:
        from ._commands import main  # noqa: PLC0415
    except ModuleNotFoundError as error:
        if error.name not in {"requests", "click"}:
            raise
        sys.exit(
            f"flask-batch needs the client extra ({error.name} is missing): "
            "pip install 'flask-batch[client]'"
        )
    main(prog_name="flask-batch")


def __getattr__(name: str) -> Any:
    if name == "main":
        from ._commands import main  # noqa: PLC0415

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
