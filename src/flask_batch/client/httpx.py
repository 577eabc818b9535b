"""httpx transports that batch: :class:`BatchTransport` (sync) and :class:`AsyncBatchTransport`.

Async, batching is transparent: requests to the batch endpoint's origin that are issued
concurrently (``asyncio.gather``, a task group) are collected for a short window and sent as
one batch, and each caller gets its own ``httpx.Response``::

    transport = AsyncBatchTransport("https://api.example.com/batch")
    async with httpx.AsyncClient(transport=transport) as client:
        alice, bob = await asyncio.gather(
            client.get("https://api.example.com/people/alice"),
            client.get("https://api.example.com/people/bob"),
        )   # one POST /batch

Sync, batching is explicit: requests queued in a batch scope are sent when it ends (as with
:class:`~flask_batch.client.Batching`), or a list of requests goes at once with
:meth:`BatchTransport.send_all`. A request made directly through the client passes through.

Requests to another origin (and to the batch URL itself) always pass straight through the
wrapped transport. Every response that came in a batch says how many attempts it took in
``response.extensions["flask_batch.attempts"]``.

Atomic groups (applied whole or not at all): ``with scope.changeset():`` in a sync batch
scope, and ``send_all(requests, atomic=True)`` on either transport. Async has no block for
them on purpose: a group must be complete before any of it is sent, and a block would hold
back each member until it ends, so awaiting one inside it would wait forever; a list is
complete when it is given, as ``asyncio.gather`` takes its awaitables.

(Just over 400 lines on purpose: the two transports stand side by side, as httpx keeps its
own, so that each sync method reads beside its async twin.) Each is thin: what a batch
exchange means is the client core's (:mod:`flask_batch.client._core`), the loops that do the
I/O are in :mod:`flask_batch.client._drivers`, and the conversions between httpx and the core in
:mod:`flask_batch.client._httpx_messages`.

A request's timeout bounds the whole exchange of the batch it goes in: connect, send, and the
whole answer, by the longest of its phases (``httpx.Timeout(5)``: 5 s in all); a batch ends
by the smallest of its requests'.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Unpack, cast

import httpx

from ..wire.multipart_answers import ReadAnswer
from ._core.limits import description
from ._core.model import Answered, Arrival, Lost, PreparedBatch, Reply, Result
from ._core.options import Options
from ._core.outcome import AsyncSentBatch, SentBatch
from ._core.pending import BatchNotSent, BatchResponse, UnsentRequestsWarning
from ._core.queueing import Changeset
from ._core.report import BatchFailed
from ._core.run import Run
from ._drivers import KEPT_CONNECTIONS, SharedPools, drive, drive_async, read_within
from ._httpx_base import TransportBase
from ._httpx_messages import (
    ATTEMPTS,
    CONTENT_ID,
    SENT_NOTHING,
    Entry,
    HttpxBatchFailed,
    HttpxBatchResponse,
    failure,
    fill,
    outer_request,
    reply,
    response_of,
)
from ._httpx_scope import (
    BatchScope,
    Sent,
    attempts_of,
    batched_entries,
    depends_of,
    filled,
    reported,
    resent,
    unanswered,
)

__all__ = [
    "ATTEMPTS",
    "CONTENT_ID",
    "AsyncBatchTransport",
    "AsyncSentBatch",
    "BatchFailed",
    "BatchNotSent",
    "BatchResponse",
    "BatchScope",
    "BatchTransport",
    "Changeset",
    "HttpxBatchFailed",
    "HttpxBatchResponse",
    "SentBatch",
    "UnsentRequestsWarning",
]

#: The transports that :class:`BatchTransport` makes when given none, one per batch origin,
#: kept open across transports and clients (docs/clients/index.md, "Connections").
_SHARED_TRANSPORTS = SharedPools(
    lambda: httpx.HTTPTransport(
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=KEPT_CONNECTIONS)
    ),
    httpx.HTTPTransport.close,
)


class BatchTransport(TransportBase, httpx.BaseTransport):
    """A sync httpx transport with explicit batches: :meth:`batch` and :meth:`send_all`.

    ``transport`` carries the batch requests and every request that is not batched; by
    default an ``httpx.HTTPTransport`` shared by every ``BatchTransport`` of the batch URL's
    origin, whose connections outlive this one (closing this one leaves them open). The
    options are those of :class:`~flask_batch.client.Batching`: ``format``, ``retries``,
    ``max_parts``, ``max_body_size``, ``discover``, ``split``, ``concurrency`` (threads),
    ``compress_bodies`` and ``sleep``.
    """

    def __init__(
        self,
        batch_url: str | httpx.URL,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], object] = time.sleep,
        **options: Unpack[Options],
    ) -> None:
        super().__init__(batch_url, **options)
        #: Whether the wrapped transport is the caller's, which :meth:`close` closes.
        self._own_transport = transport is not None
        self._transport = (
            transport if transport is not None else _SHARED_TRANSPORTS.get(self._origin)
        )
        self._sleep = sleep
        self._scopes: weakref.WeakSet[BatchScope] = weakref.WeakSet()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """A request made directly through the client is not batched: it passes through."""
        return self._transport.handle_request(request)

    def close(self) -> None:
        """Close the wrapped transport, if it was given (the shared one stays open). Batch
        scopes still holding requests are dropped: their responses raise
        :class:`BatchNotSent` when read, and an :class:`UnsentRequestsWarning` says so now."""
        for scope in list(self._scopes):
            scope._drop("the BatchTransport was closed before its batch scope was sent", 2)
        if self._own_transport:
            self._transport.close()

    def batch(self, client: httpx.Client | None = None) -> BatchScope:
        """A scope whose requests are sent as one batch when it ends::

            with transport.batch(client) as batch:
                alice = batch.patch(f"{base}/people/alice/", json={"age": 31})
            alice.status_code, alice.json()

        With ``client``, requests are built as ``client`` builds them (its base URL, headers,
        cookies, params, auth, event hooks), and cookies that come back land in its jar.
        """
        scope = BatchScope(self, client)
        self._scopes.add(scope)
        return scope

    def send_all(
        self, requests: Iterable[httpx.Request], *, atomic: bool = False
    ) -> SentBatch[httpx.Response]:
        """Send ``requests`` (batching those that can be) and return their responses in
        order; raises :class:`HttpxBatchFailed` (with ``responses``, and ``batch``) if any got
        no answer. ``atomic=True``: they are one atomic group (:meth:`BatchScope.changeset`).
        The list returned says what they came to: ``ok``, ``failed()``, ``retry_failed()``
        (docs/clients/index.md, "What a batch came to")."""
        requests = list(requests)
        batched, group = self._batched(requests, atomic)
        entries: list[Entry | None] = [None] * len(requests)
        for index in batched:
            entries[index] = self._entry(requests[index], requests[index].read(), group=group)
        queue = [
            (entry, HttpxBatchResponse(request))
            for entry, request in zip(entries, requests, strict=True)
        ]
        try:
            sent = BatchScope(self, None)._sent(queue)
        except HttpxBatchFailed as error:
            # None where nothing came, as it always was for send_all.
            error.responses = [
                None if response._pending is not None else response for _, response in queue
            ]
            raise
        return cast("SentBatch[httpx.Response]", sent)  # its responses are httpx's

    def exchange(self, entries: Sequence[Entry]) -> list[Result[httpx.Response]]:
        """Send ``entries`` as batches until each has its final result."""
        if not entries:
            return []
        run = self._run(entries)
        drive(
            run,
            functools.partial(self._post, entries),
            discover=functools.partial(self._discover, entries),
            sleep=self._sleep,
            timed_out=httpx.TimeoutException,
        )
        return run.results()

    def _passed_through(self, request: httpx.Request) -> httpx.Response:
        response = self._transport.handle_request(request)
        response.request = request
        return response

    def _post(
        self, entries: Sequence[Entry], batch: PreparedBatch, deadline: float | None
    ) -> Reply[httpx.Response] | Lost:
        request = outer_request(self.batch_url, entries, deadline, batch)
        started = time.perf_counter()
        try:
            response = self._fetch(request, deadline)
        except httpx.TransportError as error:
            return Lost(error, sent_nothing=isinstance(error, SENT_NOTHING))
        return reply(response, response.content, started)

    def _discover(self, entries: Sequence[Entry], deadline: float | None) -> object:
        try:
            response = self._fetch(outer_request(self.batch_url, entries, deadline), deadline)
        except (httpx.HTTPError, ValueError):
            return None
        return description(response.status_code, response.content)

    def _fetch(self, request: httpx.Request, deadline: float | None) -> httpx.Response:
        """Send a request of the transport's own (a batch, a discovery) and read its whole
        answer by ``deadline``, in pieces with the deadline checked after each (``Overdue``
        once it passed): the wrapped transport bounds each wait, not their sum."""
        streamed = self._transport.handle_request(request)
        try:
            if streamed.is_stream_consumed:  # read already (a transport that does not stream)
                streamed.request = request
                return streamed
            raw = read_within(streamed.iter_raw(), deadline)
        finally:
            streamed.close()
        response = httpx.Response(
            streamed.status_code,
            headers=streamed.headers,
            stream=httpx.ByteStream(raw),
            request=request,
            extensions=streamed.extensions,
        )
        response.read()  # decoded as httpx decodes
        return response


class AsyncBatchTransport(TransportBase, httpx.AsyncBaseTransport):
    """An async httpx transport that batches concurrent requests transparently.

    A request to the batch endpoint's origin opens a *window* (or joins the open one). The
    window closes when a pass of the event loop brings no new request (the other ready tasks
    have run), after ``window`` seconds at most (default 2 ms), or when it holds
    ``max_batch`` requests (default: the endpoint's ``max_parts`` as known when it opened). Its
    requests then go as one batch (or several, split to the endpoint's limits, ``concurrency``
    at a time), and each caller gets its own ``httpx.Response``. Windows that follow each
    other run concurrently, as the requests in them would have.

    The other options are those of :class:`BatchTransport`; ``sleep`` is a coroutine
    function (``asyncio.sleep``).
    """

    def __init__(
        self,
        batch_url: str | httpx.URL,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        window: float = 0.002,
        max_batch: int | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        **options: Unpack[Options],
    ) -> None:
        super().__init__(batch_url, **options)
        if not isinstance(window, (int, float)) or not 0 <= window < float("inf"):
            raise ValueError(f"window must be a number of seconds >= 0, not {window!r}")
        if max_batch is not None and (type(max_batch) is not int or max_batch < 1):
            raise ValueError(f"max_batch must be a positive integer or None, not {max_batch!r}")
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.window = window
        self.max_batch = max_batch
        self._sleep = sleep
        self._open: _Window | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # One discovery at a time, per event loop (a lock belongs to the loop it waits on).
        self._discovery: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.batchable(request):
            return await self._transport.handle_async_request(request)
        if CONTENT_ID in request.extensions:
            raise ValueError(
                f"the {CONTENT_ID!r} extension names a request in its batch, and a batch of "
                "concurrent requests has no order to write references in: use send_all()"
            )
        entry = self._entry(request, await request.aread())
        entry.future = asyncio.get_running_loop().create_future()
        window = self._open
        if window is None:
            window = self._open = _Window(self.max_batch or self.limits.max_parts)
            task = asyncio.ensure_future(self._collect(window))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        window.entries.append(entry)
        if len(window.entries) >= window.size:
            window.full = True
            self._open = None  # the next request opens a new window
        return await entry.future

    async def send_all(
        self, requests: Iterable[httpx.Request], *, atomic: bool = False
    ) -> AsyncSentBatch[httpx.Response]:
        """Send ``requests`` now, batching those that can be, and return their responses in
        order; raises :class:`HttpxBatchFailed` (with ``responses``, and ``batch``) if any got
        no answer. ``atomic=True``: they are one atomic group, applied whole or not at all
        (docs/clients/atomic-groups.md; a reference is a request built as
        ``httpx.Request("POST", "$ada/orders")``, naming a request given
        ``extensions={CONTENT_ID: "ada"}``). The list returned says what they came to:
        ``ok``, ``failed()``, ``await retry_failed()`` (docs/clients/index.md, "What a batch
        came to").
        """
        requests = list(requests)
        batched, group = self._batched(requests, atomic)
        entries: list[Entry | None] = [None] * len(requests)
        for index in batched:
            body = await requests[index].aread()
            entries[index] = self._entry(requests[index], body, group=group)
        queue = [
            (entry, HttpxBatchResponse(request))
            for entry, request in zip(entries, requests, strict=True)
        ]
        depends_on = depends_of(queue)
        results = await self._send(queue)
        sent = AsyncSentBatch(
            [response for _, response in queue],
            attempts_of(queue, depends_on),
            self.retry,
            functools.partial(self._resend, queue, depends_on),
            reported(results),
        )
        failures = unanswered(queue, results)
        if failures:
            # None where nothing came, as it always was for send_all.
            error = failure(
                failures,
                len(queue),
                [None if response._pending is not None else response for _, response in queue],
            )
            error.batch = sent
            raise error
        return cast("AsyncSentBatch[httpx.Response]", sent)  # its responses are httpx's

    async def _resend(
        self, queue: Sent, depends_on: list[tuple[int, ...]], positions: list[int]
    ) -> list[int | None]:
        """Send the requests of ``queue`` at ``positions`` again (``retry_failed()``); each
        one's new status (None: no answer)."""
        again = resent(queue, depends_on, positions)
        await self._send(again)
        return [
            None if response._pending is not None else response.status_code for _, response in again
        ]

    async def _send(self, queue: Sent) -> list[Result[httpx.Response]]:
        """Send ``queue``, the batched requests as batches and the others at the same time;
        fill each response in place, or say why it got no answer."""
        entries = batched_entries(queue)

        async def passed_through(response: HttpxBatchResponse) -> None:
            source = await self._transport.handle_async_request(response.request)
            try:
                raw = b"".join([piece async for piece in source.aiter_raw()])
            finally:
                await source.aclose()
            # As it came (still encoded), in a stream that the sync fill can read.
            as_read = httpx.Response(
                source.status_code,
                headers=source.headers,
                stream=httpx.ByteStream(raw),
                request=response.request,
                extensions=source.extensions,
            )
            fill(response, as_read)

        passing = [
            asyncio.ensure_future(passed_through(response))
            for entry, response in queue
            if entry is None
        ]
        try:
            results = await self.exchange(entries)
            await asyncio.gather(*passing)
        finally:
            for task in passing:
                task.cancel()
        filled(queue, results)
        return results

    async def exchange(self, entries: Sequence[Entry]) -> list[Result[httpx.Response]]:
        """Send ``entries`` as batches until each has its final result."""
        if not entries:
            return []
        run = self._run(entries)
        await drive_async(
            run,
            functools.partial(self._post, entries, run),
            discover=functools.partial(self._discover, entries),
            discovering=self._discovery_lock(),
            sleep=self._sleep,
            timed_out=httpx.TimeoutException,
        )
        return run.results()

    def _discovery_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._discovery is None or self._discovery[0] is not loop:
            self._discovery = (loop, asyncio.Lock())
        return self._discovery[1]

    async def aclose(self) -> None:
        """Wait for the batches in flight, then close the wrapped transport."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._transport.aclose()

    async def _collect(self, window: _Window) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window
        while not window.full:
            seen = len(window.entries)
            await asyncio.sleep(0)  # the other ready tasks run, and may add requests
            if len(window.entries) == seen or loop.time() >= deadline:
                break
        if self._open is window:
            self._open = None
        entries = [entry for entry in window.entries if not _abandoned(entry)]
        try:
            results = await self.exchange(entries)
        except BaseException as error:
            for entry in entries:
                _reject(entry, f"the batch could not be sent: {error}", error)
            if not isinstance(error, Exception):
                raise
            return
        for entry, result in zip(entries, results, strict=True):
            if _abandoned(entry):
                continue  # the caller went away (cancelled)
            assert entry.future is not None
            if isinstance(result, Answered):
                entry.future.set_result(response_of(result, entry.request))
            else:
                entry.future.set_exception(failure([(entry.request, result)], 1, []))

    async def _post(
        self,
        entries: Sequence[Entry],
        run: Run[httpx.Response],
        batch: PreparedBatch,
        deadline: float | None,
    ) -> Reply[httpx.Response] | Lost:
        """POST one batch and read its answer as it arrives: a request whose answer is final
        on its own gets it at once (:meth:`Run.settle_early`), so that its caller goes on
        while the server still answers the others (the run is the event loop's: it is
        safe to settle here)."""

        def arriving(response: httpx.Response) -> Arrival | None:
            arrival = run.arrival(batch, response.status_code, response.headers.get("Content-Type"))
            if arrival is not None:

                def settle(answers: list[ReadAnswer]) -> None:
                    _resolve(entries, run.settle_early(arrival, answers, response))

                arrival.then = settle
            return arrival

        request = outer_request(self.batch_url, entries, deadline, batch)
        started = time.perf_counter()
        try:
            response, arrival = await self._fetch(request, arriving)
        except httpx.TransportError as error:
            return Lost(error, sent_nothing=isinstance(error, SENT_NOTHING))
        return reply(response, response.content, started, arrival)

    async def _discover(self, entries: Sequence[Entry], deadline: float | None) -> object:
        try:
            response, _ = await self._fetch(outer_request(self.batch_url, entries, deadline))
        except (httpx.HTTPError, ValueError):
            return None
        return description(response.status_code, response.content)

    async def _fetch(
        self,
        request: httpx.Request,
        arriving: Callable[[httpx.Response], Arrival | None] | None = None,
    ) -> tuple[httpx.Response, Arrival | None]:
        """Send a request of the transport's own (a batch, a discovery) and read its whole
        answer (its deadline cancels it), each piece, decoded as ``aread()`` decodes it, also
        given to the :class:`Arrival` that ``arriving`` makes of the answer's head, if any."""
        started = time.perf_counter()
        response = await self._transport.handle_async_request(request)
        # Until the answer ends (reply() says how long the whole took): what an answer
        # settled early took, if the rest of its batch never comes.
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        arrival = None
        try:
            arrival = None if arriving is None else arriving(response)
            if arrival is None:
                await response.aread()
            else:
                pieces = []
                async for piece in response.aiter_bytes():
                    pieces.append(piece)
                    arrival.feed(piece)
                response._content = b"".join(pieces)  # what aread() keeps
        finally:
            await response.aclose()
        response.request = request
        return response, arrival


@dataclass
class _Window:
    """Requests collected for the next batch."""

    #: How many requests close it (as known when it opened).
    size: int
    entries: list[Entry] = field(default_factory=list)
    full: bool = False


def _resolve(
    entries: Sequence[Entry], settled: Sequence[tuple[int, Answered[httpx.Response]]]
) -> None:
    """Give the callers of the ``settled`` requests their answers now (a request of
    ``send_all``, with no caller waiting alone, gets its answer with the others)."""
    for index, result in settled:
        entry = entries[index]
        if not _abandoned(entry):
            assert entry.future is not None
            entry.future.set_result(response_of(result, entry.request))


def _abandoned(entry: Entry) -> bool:
    return entry.future is None or entry.future.done()


def _reject(entry: Entry, reason: str, error: BaseException) -> None:
    if not _abandoned(entry):
        assert entry.future is not None
        failed = HttpxBatchFailed(reason, request=entry.request, requests=[entry.request])
        failed.__cause__ = error
        entry.future.set_exception(failed)
