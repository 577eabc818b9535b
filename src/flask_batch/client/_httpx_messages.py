"""What the httpx front ends adapt: their requests as parts and the batch request, answers as
``httpx.Response`` objects, and their kinds of :class:`~._core.report.BatchFailed` and
:class:`~._core.pending.BatchResponse`. Shared by the sync and async transports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import httpx

from ..wire.model import Headers, SubRequest
from ._core.formats import Format
from ._core.model import Answered, Arrival, Failed, PreparedBatch, Reply, smallest
from ._core.outcome import AsyncSentBatch, SentBatch
from ._core.pending import BatchResponse
from ._core.queueing import (
    NOT_CARRIED,
    Changeset,
    check_content_id,
    is_reference,
    origin,
    sub_request,
)
from ._core.report import BatchFailed, summary
from ._drivers import remaining

#: The response extension that says how many attempts (batches) an answer took.
ATTEMPTS = "flask_batch.attempts"
#: The request extension that gives a request its id in its batch (``content_id=``).
CONTENT_ID = "flask_batch.content_id"
# Headers of a part that the batch request does not take over even when every part agrees
# (what the batch accepts back is the batch's business).
_NOT_SHARED = NOT_CARRIED | {"expect", "trailer", "accept", "accept-encoding"}
#: The batch request's timeouts when its requests carry none: httpx's own default.
DEFAULT_TIMEOUT = httpx.Timeout(5.0).as_dict()
_PHASES = ("connect", "read", "write", "pool")
#: The request extensions a batched request honours; the others need a connection of its own.
_BATCHED_EXTENSIONS = frozenset({"timeout", CONTENT_ID})
#: Errors of the wrapped transport after which the batch surely never reached the server.
SENT_NOTHING = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_NOT_SENT = "the batch has not been sent yet: leave the `with transport.batch()` block"
_GUARDED = frozenset(
    {
        "status_code",
        "headers",
        "content",
        "text",
        "json",
        "raise_for_status",
        "is_success",
        "is_error",
        "is_informational",
        "is_redirect",
        "is_client_error",
        "is_server_error",
        "has_redirect_location",
        "reason_phrase",
        "http_version",
        "encoding",
        "charset_encoding",
        "extensions",
        "cookies",
        "elapsed",
        "links",
        "stream",
        "read",
        "iter_bytes",
        "iter_text",
        "iter_lines",
        "iter_raw",
        "history",
        "next_request",
    }
)


class HttpxBatchFailed(BatchFailed, httpx.TransportError):
    """:class:`~flask_batch.client.BatchFailed` as the httpx transports raise it: an
    ``httpx.TransportError``. ``responses``: what :meth:`BatchTransport.send_all` (or a
    batch scope) got, in order, None where nothing came; ``batch``: what the batch came
    to, whose ``retry_failed()`` sends the failed requests again (docs/clients/index.md, "What a
    batch came to")."""

    batch: SentBatch[Any] | AsyncSentBatch[Any] | None = None

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
        requests: Sequence[httpx.Request] = (),
        responses: Sequence[httpx.Response | None] = (),
    ) -> None:
        super().__init__(message, request=request)
        self.response = response
        self.requests = list(requests)
        self.responses = list(responses)


class HttpxBatchResponse(BatchResponse, httpx.Response):
    """An ``httpx.Response`` queued in a batch scope, filled in place when it is sent."""

    _pending: str | None = _NOT_SENT
    _guarded = _GUARDED

    def __init__(self, request: httpx.Request) -> None:
        # Only the request is known until the batch is answered (then fill runs __init__).
        self._request = request

    def __repr__(self) -> str:
        return self._pending_repr() or httpx.Response.__repr__(self)


class _Filled(HttpxBatchResponse):
    """An :class:`HttpxBatchResponse` once filled (its class from then on): nothing is
    guarded any more, so reading an attribute takes object's own path, not the guard's (a
    Python call on each read, by httpx's code and the caller's alike)."""

    __getattribute__ = object.__getattribute__


@dataclass(slots=True)
class Entry:
    """A request waiting for its batch."""

    request: httpx.Request
    sub_request: SubRequest
    depends_on: tuple[int, ...] = ()
    future: asyncio.Future[httpx.Response] | None = field(default=None, repr=False)
    #: The changeset it is a member of (None: none).
    group: Changeset | None = None
    #: Its timeout of each phase (connect, read, write, pool: :data:`_PHASES`), httpx's
    #: default if it has none; None: that phase is unbounded.
    phases: tuple[float | None, ...] = field(init=False)
    #: The seconds the whole exchange of its batch may take: its longest phase (None if one
    #: is unbounded).
    timeout: float | None = field(init=False)

    def __post_init__(self) -> None:
        timeouts: Mapping[str, float | None] = (
            self.request.extensions.get("timeout") or DEFAULT_TIMEOUT
        )
        self.phases = phases = tuple(map(timeouts.get, _PHASES))
        self.timeout = None if None in phases else max(cast("tuple[float, ...]", phases))


def entry(
    request: httpx.Request,
    body: bytes,
    format: type[Format],
    depends_on: tuple[int, ...] = (),
    *,
    target: str | None = None,
    group: Changeset | None = None,
) -> Entry:
    """``request`` (whose body is ``body``) queued for a batch in ``format``, to ``target``
    if given (a reference), as a member of ``group`` if given; ``ValueError`` for what a
    batch cannot carry."""
    if not _BATCHED_EXTENSIONS.issuperset(request.extensions):
        unknown = sorted(set(request.extensions) - _BATCHED_EXTENSIONS)
        raise ValueError(
            f"the request extension {', '.join(map(repr, unknown))} cannot be honoured in "
            "a batch: a batched request travels in the batch request, with no connection "
            "of its own; send it outside the batch (another origin, or directly)"
        )
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
    ]
    target = target or request.url.raw_path.decode("ascii")
    part = sub_request(request.method, target, headers, body)
    content_id = request.extensions.get(CONTENT_ID)
    if content_id is not None:
        part = part._replace(content_id=check_content_id(content_id))
    format.check(part, in_group=group is not None)  # refuse now what the format cannot carry
    return Entry(request, part, depends_on, group=group)


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    return origin(url.scheme, url.host, url.port)


def refers(request: httpx.Request) -> bool:
    """Whether ``request`` is a reference to an earlier request of its batch: its URL is a
    relative one, written as ``httpx.Request("POST", "$1/items")`` builds it."""
    url = request.url
    return url.is_relative_url and is_reference(url.raw_path.decode("ascii"))


def outer_request(
    batch_url: httpx.URL,
    entries: Sequence[Entry],
    deadline: float | None,
    batch: PreparedBatch | None = None,
) -> httpx.Request:
    """The batch request (or, with no ``batch``, the discovery request) for ``entries``:
    headers every part agrees on (its credentials, say) go on it too, so an endpoint that
    checks them lets it in. Each phase waits at most the smallest of the entries' timeouts
    for it, and never past ``deadline``."""
    if batch is not None:
        entries = [entries[index] for index in batch.items]
    headers = _shared_headers([entry.sub_request.headers for entry in entries])
    left = remaining(deadline)
    distinct = {entry.phases for entry in entries}  # requests mostly share their timeouts
    timeouts = {
        phase: smallest([*(phases[at] for phases in distinct), left])
        for at, phase in enumerate(_PHASES)
    }
    extensions: dict[str, Any] = {"timeout": timeouts}
    if batch is None:
        headers.append((b"Accept", b"application/json"))
        return httpx.Request("GET", batch_url, headers=headers, extensions=extensions)
    own = [(name.encode("ascii"), value.encode("ascii")) for name, value in batch.headers]
    names = {name.lower() for name, _ in own}
    headers = [field for field in headers if field[0].lower() not in names] + own
    return httpx.Request(
        "POST", batch_url, headers=headers, content=batch.body, extensions=extensions
    )


def _shared_headers(parts: Sequence[Headers]) -> list[tuple[bytes, bytes]]:
    """The headers every part carries with the same value (each part keeps its own)."""
    if not parts:
        return []
    shared = [
        (name, value)
        for name, value in parts[0]
        if name.lower() not in _NOT_SHARED and not name.lower().startswith("content-")
    ]
    seen = parts[0]
    for headers in parts[1:]:
        if headers != seen:  # parts mostly repeat the headers of the one before
            present = set(headers)
            shared = [field for field in shared if field in present]
            seen = headers
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in shared]


def reply(
    response: httpx.Response, body: bytes, started: float, arrival: Arrival | None = None
) -> Reply[httpx.Response]:
    """What the batch endpoint answered to a batch sent at ``started`` (a perf_counter);
    ``arrival``: its body read as it arrived."""
    response.elapsed = timedelta(seconds=time.perf_counter() - started)
    return Reply(
        response.status_code,
        response.reason_phrase,
        response.headers.get("Content-Type"),
        response.headers.get("Retry-After"),
        body,
        response,
        response.headers.get("Accept-Encoding"),
        arrival,
    )


def response_of(
    result: Answered[httpx.Response],
    request: httpx.Request,
    into: httpx.Response | None = None,
) -> httpx.Response:
    """The ``httpx.Response`` an answer stands for, as a transport returns it (unread); made
    in ``into`` if given (a pending response, filled in place)."""
    answer = result.response
    extensions = {
        "http_version": b"HTTP/1.1",
        "reason_phrase": answer.reason.encode("latin-1", "replace"),
        ATTEMPTS: result.attempts,
    }
    response = httpx.Response.__new__(httpx.Response) if into is None else into
    httpx.Response.__init__(
        response,
        answer.status,
        headers=_raw(answer.headers),
        stream=httpx.ByteStream(bytes(answer.body)),  # read from the wire: bytes, not copied
        request=request,
        extensions=extensions,
    )
    return response


def _raw(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def elapsed(result: Answered[httpx.Response]) -> timedelta:
    """How long the batch that brought ``result`` took."""
    outer = result.outer
    return outer.elapsed if outer is not None else timedelta(0)


def read(response: httpx.Response) -> httpx.Response:
    """``response``, read to its end (an answer's body is in memory: reading it does no I/O,
    on an event loop too) and closed."""
    try:
        response.read()
    finally:
        response.close()
    return response


#: What an ``httpx.Response`` keeps of the body it read, and reads it again without.
_READ = ("_content", "_text", "_encoding", "_decoder", "_cookies")


def forget_body(response: HttpxBatchResponse) -> None:
    """Forget what ``response`` read of its last answer, so that filling it again (a
    request sent again) gives it the new answer's body, not the old one's."""
    for name in _READ:
        response.__dict__.pop(name, None)


def fill(target: HttpxBatchResponse, source: httpx.Response | Answered[httpx.Response]) -> None:
    """Make the pending ``target`` the response ``source`` is (one passed through, or an
    answer of its batch, which took as long as that batch), and read it."""
    if target._pending is None:  # answered before: sent again by retry_failed()
        forget_body(target)
    if isinstance(source, Answered):
        response_of(source, target.request, into=target)
        took = elapsed(source)
    else:
        httpx.Response.__init__(
            target,
            source.status_code,
            headers=source.headers,
            stream=source.stream,
            request=source.request,
            extensions=source.extensions,
        )
        took = timedelta(0)
    target._pending = None
    target.__class__ = _Filled  # before reading it, which reads many of its attributes
    try:
        read(target)
    except BaseException as error:
        target.__class__ = HttpxBatchResponse  # not filled after all (a stream that broke)
        target._pending = f"its answer broke while it was read: {error}"
        raise
    target.elapsed = took


def failure(
    failures: Sequence[tuple[httpx.Request, Failed[httpx.Response]]],
    total: int,
    responses: Sequence[httpx.Response | None],
) -> HttpxBatchFailed:
    """The error for requests left without an answer, among ``total``; ``responses``: what
    came, in order."""
    said = summary([failed for _, failed in failures], total)
    error = HttpxBatchFailed(
        said.message,
        request=failures[0][0],
        response=said.outer,
        requests=[request for request, _ in failures],
        responses=responses,
    )
    error.__cause__ = said.error
    return error
