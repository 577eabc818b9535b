"""Each part's trace continues the batch's: OpenTelemetry context propagated into the parts.

Why: OpenTelemetry's Flask, Django, WSGI and ASGI instrumentations give each part a span of
its own, but they take its parent from the part's request headers; a part would otherwise
start a trace of its own, or hang off the client's span beside the batch's (parts inherit
the batch request's headers, ``traceparent`` included). So the trace fields of the batch's
span replace the inherited ones, and a part that brings its own keeps them. The batch's span
is the one current when the batch is read (a framework's or OpenTelemetry's middleware
instrumented the batch request); when there is none (the middlewares in front of an
instrumented Django or FastAPI application see the batch request first), the batch gets a
``SERVER`` span of its own, continuing the batch request's trace.

OpenTelemetry is optional and never imported here: when the application has not imported
``opentelemetry.trace``, nothing can be instrumented and nothing is done.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .answers import ClosingBody

__all__ = ["NO_TRACE", "TRACER", "BatchTrace", "batch_trace"]

#: The tracer name of the batch spans this package starts.
TRACER = "flask_batch"


class BatchTrace:
    """The trace context a batch's parts continue, and the batch's own span if it has one."""

    __slots__ = ("_span", "fields")

    def __init__(self, fields: tuple[tuple[str, str], ...] = (), span: Any = None) -> None:
        #: Header fields (lower-case names) every part carries unless it brings its own.
        self.fields = fields
        self._span = span

    def end(self, status: int | None = None) -> None:
        """End the batch's own span, if it has one (once the answer has been sent)."""
        if self._span is not None:
            if status is not None:
                self._span.set_attribute("http.response.status_code", status)
            self._span.end()
            self._span = None

    def ending(self, body: Iterator[bytes], status: int) -> Iterator[bytes]:
        """``body`` (a WSGI answer), ending the batch's own span once it is closed."""
        if self._span is None:
            return body
        return ClosingBody(body, body, lambda: self.end(status))


#: No trace to continue: OpenTelemetry is not in use.
NO_TRACE = BatchTrace()


def batch_trace(
    headers: Callable[[], Mapping[str, str]], method: str, path: str, started: float
) -> BatchTrace:
    """The trace a batch's parts continue.

    ``headers`` gives the batch request's header fields (lower-case names), asked for only
    when the trace is read from them; ``started``: when the batch request arrived
    (``time.monotonic()``), the start of the batch's own span.
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return NO_TRACE
    from opentelemetry import context, propagate  # noqa: PLC0415 (the application's choice)

    span = None
    current = context.get_current()
    if not trace.get_current_span(current).get_span_context().is_valid:
        parent = propagate.extract(headers())
        span = trace.get_tracer(TRACER).start_span(
            f"{method} {path}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
            start_time=time.time_ns() - int((time.monotonic() - started) * 1e9),
        )
        current = trace.set_span_in_context(span, parent)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=current)
    return BatchTrace(tuple((name.lower(), value) for name, value in carrier.items()), span)
