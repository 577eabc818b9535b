"""One record per part and one per batch, for logs and metrics: what the access log cannot
show (a batch is one ``POST /batch 200`` there, whatever its parts answered).

Each part written to the answer is logged on ``flask_batch.parts`` (INFO) with its batch's
id, its place, its Content-ID (or JSON id), method, path, status and duration, as
``extra=`` fields for structured handlers; the batch's summary follows (parts, failures,
duration, format). The same fields go to the blinker signals of :mod:`flask_batch.signals`
once the application has imported that module (blinker is never imported here, so the
middlewares need nothing installed beside this package).

Nothing is measured or built for a batch when neither is wanted: :func:`observe` decides
once per batch and answers None, and the schedule then does no more than one ``is None``
check per part.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from .wire.model import SubRequest, SubResponse

__all__ = ["BATCH_ID_HEADER", "FAILURES_HEADER", "Observer", "Tally", "observe"]

#: The logger of the per-part and per-batch records: a child of ``flask_batch`` (whose
#: warnings and errors stay apart), so its INFO lines can be routed or silenced alone.
logger = logging.getLogger("flask_batch.parts")

#: The batch request's header whose value becomes the batch's id, when present.
BATCH_ID_HEADER = "X-Request-ID"
#: The longest request id taken as it is; a longer or unprintable one gets a fresh id.
_LONGEST_ID = 200


#: The answer's header that counts its parts answered 400 or more: sent when every part
#: was answered by the time the head went out (:meth:`Tally.headers`).
FAILURES_HEADER = "Batch-Failures"


@dataclass(slots=True)
class Tally:
    """How a batch's answer went so far: the parts written, and how many failed."""

    parts: int = 0
    #: Parts answered 400 or more, as written (a part that did not run counts).
    failures: int = 0
    #: Every part is written: the counts are final.
    complete: bool = False

    def headers(self) -> list[tuple[str, str]]:
        """The header fields that say how the answer went, for a head sent now: the count of
        failed parts once the answer is complete, none while parts may still fail (the
        answer streams: the head does not wait for the parts)."""
        return [(FAILURES_HEADER, str(self.failures))] if self.complete else []


class Observer:
    """What one batch's records need: its id, when it started, each part's running time."""

    __slots__ = ("_log", "_ran", "_signals", "_started", "_tally", "batch_format", "batch_id")

    def __init__(
        self, batch_id: str, batch_format: str, started: float, signals: Any, tally: Tally
    ) -> None:
        self.batch_id = batch_id
        self.batch_format = batch_format
        self._started = started
        self._log = logger.isEnabledFor(logging.INFO)
        self._signals = signals
        self._ran: dict[int, float] = {}
        self._tally = tally

    def ran(self, index: int, since: float) -> None:
        """Part ``index`` was dispatched at ``since`` (:func:`time.perf_counter`) and is done."""
        self._ran[index] = time.perf_counter() - since

    def part(self, index: int, request: SubRequest, answer: SubResponse) -> None:
        """Part ``index`` is written to the answer: ``request`` answered ``answer``."""
        duration = self._ran.get(index, 0.0)
        fields = {
            "batch_id": self.batch_id,
            "part": index + 1,
            "part_id": request.content_id,
            "method": request.method,
            "path": request.target.partition("?")[0],
            "status": answer.status,
            # Parts that did not run (refused, skipped, past the deadline) took no time.
            "duration": duration,
        }
        if self._log:
            logger.info(
                "batch %s part %d%s: %s %s %d %.1f ms",
                self.batch_id,
                index + 1,
                "" if request.content_id is None else f" ({request.content_id})",
                request.method,
                request.target,
                answer.status,
                duration * 1000,
                extra=fields,
            )
        if self._signals is not None:
            self._signals.part_answered.send(None, **fields)

    def end(self) -> None:
        """The batch's answer is complete: its summary."""
        duration = time.monotonic() - self._started
        tally = self._tally
        fields = {
            "batch_id": self.batch_id,
            "parts": tally.parts,
            "failures": tally.failures,
            "duration": duration,
            "batch_format": self.batch_format,
        }
        if self._log:
            logger.info(
                "batch %s: %d parts, %d failed, %.1f ms (%s)",
                self.batch_id,
                tally.parts,
                tally.failures,
                duration * 1000,
                self.batch_format,
                extra=fields,
            )
        if self._signals is not None:
            self._signals.batch_answered.send(None, **fields)


def observe(
    request_id: str | None, batch_format: str, started: float, tally: Tally
) -> Observer | None:
    """The observer of a batch (None: nobody listens, so nothing is measured).

    ``request_id``: the batch request's :data:`BATCH_ID_HEADER`, its id when it is a short,
    printable value (a proxy's or the client's, so the lines join theirs); otherwise the
    batch gets a fresh random one. ``started``: when the batch request arrived
    (:func:`time.monotonic`); ``tally``: the batch's, which the summary reports.
    """
    signals = sys.modules.get("flask_batch.signals")
    if signals is not None and not signals.receiving():
        signals = None
    if signals is None and not logger.isEnabledFor(logging.INFO):
        return None
    if not request_id or len(request_id) > _LONGEST_ID or not request_id.isprintable():
        request_id = os.urandom(8).hex()
    return Observer(request_id, batch_format, started, signals, tally)
