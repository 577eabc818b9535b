"""The ``flask-batch`` command line: ``flask-batch send FILE.http --url URL`` sends the
requests of a ``.http`` file as one batch and prints each answer; ``flask-batch describe
URL`` prints what a batch endpoint supports and its limits (README, "The command line").

It is a client application, on the requests front end (:class:`~flask_batch.client.Batching`),
and needs the ``client`` extra; ``_http_file`` reads the ``.http`` format without I/O.
"""

from __future__ import annotations

from ._commands import main

__all__ = ["main"]
