"""Runs a batch: each sub-request through a dispatcher, the answers written as they come.

The engine knows neither the wire format's details (a writer does) nor the framework (a
dispatcher does), so every format and every framework shares one execution model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

from .wire.batch import ResponseWriter
from .wire.errors import problem_response
from .wire.model import SubRequest, SubResponse

logger = logging.getLogger("flask_batch")

Dispatch = Callable[[SubRequest], SubResponse]

DEADLINE_PASSED = problem_response(
    503,
    "Batch deadline passed",
    "the batch's deadline passed before this part started; it was not run",
    (("Retry-After", "1"),),
)


def stream_answers(
    requests: Sequence[SubRequest],
    dispatch: Dispatch,
    writer: ResponseWriter,
    deadline: float | None = None,
) -> Iterator[bytes]:
    """Dispatch the sub-requests in order and yield the answer body, one part at a time.

    ``deadline`` is a :func:`time.monotonic` instant: parts not started by then are answered
    ``503`` with ``Retry-After``, so a slow batch still answers every part in time.
    """
    for index, request in enumerate(requests, start=1):
        try:
            if deadline is not None and time.monotonic() >= deadline:
                response = DEADLINE_PASSED
            else:
                response = dispatch(request)
        except Exception:
            # An exception escaping the application stays inside its own part (the answer is
            # already streaming); the batch goes on.
            logger.exception("part %d (%s %s) raised", index, request.method, request.target)
            response = problem_response(
                500, "Internal Server Error", "the sub-request failed with an unhandled exception"
            )
        try:
            chunk = writer.part(response, request)
        except ValueError as error:
            # A response that cannot be framed (CR/LF in a header, say) must not reach the wire.
            logger.error("part %d: cannot send the application's response: %s", index, error)
            chunk = writer.part(
                problem_response(
                    500, "Invalid response", "the application's response could not be sent"
                ),
                request,
            )
        yield chunk
    yield writer.close()
