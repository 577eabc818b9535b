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

A request's timeout bounds the whole exchange of the batch it goes in: connect, send, and the
whole answer, by the longest of its phases (``httpx.Timeout(5)``: 5 s in all); a batch ends
by the smallest of its requests'.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any

import httpx

from ..wire.http1 import HOP_BY_HOP
from ..wire.model import Headers, SubRequest, SubResponse
from ._core.formats import FormatName
from ._core.model import Answered, Failed, Lost, Reply, Send, smallest
from ._core.options import ClientOptions
from ._core.pending import BatchNotSent, Pending, UnsentRequestsWarning, drop_unsent
from ._core.policy import Retry
from ._drivers import call_within_async, drive, drive_async, read_within, remaining

__all__ = [
    "ATTEMPTS",
    "AsyncBatchTransport",
    "BatchFailed",
    "BatchNotSent",
    "BatchResponse",
    "BatchScope",
    "BatchTransport",
    "UnsentRequestsWarning",
]

#: The response extension that says how many attempts (batches) an answer took.
ATTEMPTS = "flask_batch.attempts"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Never copied into a part, nor from the parts onto the batch request.
_NOT_IN_PART = HOP_BY_HOP | {"content-length", "host"}
# Headers of a part that the batch request does not take over even when every part agrees
# (what the batch accepts back is the batch's business).
_NOT_SHARED = _NOT_IN_PART | {"expect", "trailer", "accept", "accept-encoding"}
#: The batch request's timeouts when its requests carry none: httpx's own default.
_DEFAULT_TIMEOUT = httpx.Timeout(5.0).as_dict()
_PHASES = ("connect", "read", "write", "pool")
#: The request extensions a batched request honours; the others need a connection of its own.
_BATCHED_EXTENSIONS = frozenset({"timeout"})
# Errors of the wrapped transport after which the batch surely never reached the server.
_SENT_NOTHING = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
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


class BatchFailed(httpx.TransportError):
    """A batched request got no answer: its batch could not be sent, or its answer was not a
    batch answer (a 413 that cannot be split, a 400, a lost connection after every retry).

    ``response`` is the batch's own response (None if there was none), ``requests`` the
    requests left without an answer; the network error, if any, is the ``__cause__``. A
    *sub*-request that fails is never this: it is an ordinary response with its own status.
    """

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
        #: What :meth:`BatchTransport.send_all` got, in order (None where nothing came).
        self.responses = list(responses)


class BatchResponse(Pending, httpx.Response):
    """An ``httpx.Response`` queued in a batch scope, filled in place when it is sent."""

    _pending: str | None = _NOT_SENT
    _guarded = _GUARDED

    def __init__(self, request: httpx.Request) -> None:
        # Only the request is known until the batch is answered (then _fill runs __init__).
        self._request = request

    def __repr__(self) -> str:
        return self._pending_repr() or httpx.Response.__repr__(self)


@dataclass
class _Entry:
    """A request waiting for its batch."""

    request: httpx.Request
    sub_request: SubRequest
    depends_on: tuple[int, ...] = ()
    future: asyncio.Future[httpx.Response] | None = field(default=None, repr=False)

    @property
    def timeouts(self) -> Mapping[str, float | None]:
        """Its timeout of each phase (connect, read, write, pool), httpx's default if none."""
        timeouts: Mapping[str, float | None] = (
            self.request.extensions.get("timeout") or _DEFAULT_TIMEOUT
        )
        return timeouts

    @property
    def timeout(self) -> float | None:
        """The seconds the whole exchange of its batch may take: its longest phase (None if
        one is unbounded)."""
        phases = [self.timeouts.get(phase) for phase in _PHASES]
        return None if None in phases else max(p for p in phases if p is not None)


class _Base(ClientOptions[httpx.Response]):
    """What the sync and async transports share: which requests batch, and how."""

    def __init__(self, batch_url: str | httpx.URL) -> None:
        self.batch_url = httpx.URL(batch_url)
        self._origin = _origin(self.batch_url)

    def batchable(self, request: httpx.Request) -> bool:
        """Whether ``request`` goes in a batch: same origin as the batch URL, and not the
        batch URL itself."""
        return (
            _origin(request.url) == self._origin
            and request.url.raw_path.split(b"?", 1)[0] != self.batch_url.raw_path.split(b"?")[0]
        )

    def _entry(
        self, request: httpx.Request, body: bytes, depends_on: tuple[int, ...] = ()
    ) -> _Entry:
        unknown = sorted(set(request.extensions) - _BATCHED_EXTENSIONS)
        if unknown:
            raise ValueError(
                f"the request extension {', '.join(map(repr, unknown))} cannot be honoured in "
                "a batch: a batched request travels in the batch request, with no connection "
                "of its own; send it outside the batch (another origin, or directly)"
            )
        sub_request = _sub_request(request, body)
        self._format.check(sub_request)  # refuse now what the format cannot carry
        return _Entry(request, sub_request, depends_on)

    def _outer_request(
        self,
        method: str,
        entries: Sequence[_Entry],
        deadline: float | None,
        send: Send | None = None,
    ) -> httpx.Request:
        """The batch request (or, with no ``send``, the discovery request) for ``entries``:
        headers every part agrees on (its credentials, say) go on it too, so an endpoint that
        checks them lets it in. Each phase waits at most the smallest of the entries'
        timeouts for it, and never past ``deadline``."""
        if send is not None:
            entries = [entries[index] for index in send.items]
        headers = _shared_headers([entry.request for entry in entries])
        left = remaining(deadline)
        timeouts = {
            phase: smallest([*(entry.timeouts.get(phase) for entry in entries), left])
            for phase in _PHASES
        }
        extensions: dict[str, Any] = {"timeout": timeouts}
        if send is None:
            headers.append((b"Accept", b"application/json"))
            return httpx.Request(method, self.batch_url, headers=headers, extensions=extensions)
        headers.append((b"Content-Type", send.content_type.encode("ascii")))
        return httpx.Request(
            method, self.batch_url, headers=headers, content=send.body, extensions=extensions
        )


class BatchTransport(_Base, httpx.BaseTransport):
    """A sync httpx transport with explicit batches: :meth:`batch` and :meth:`send_all`.

    ``transport`` (by default ``httpx.HTTPTransport()``) carries the batch requests and every
    request that is not batched. The options are those of
    :class:`~flask_batch.client.Batching`: ``format``, ``retries``, ``max_parts``,
    ``max_body_size``, ``discover``, ``split``, ``concurrency`` (threads) and ``sleep``.
    """

    def __init__(
        self,
        batch_url: str | httpx.URL,
        *,
        transport: httpx.BaseTransport | None = None,
        format: FormatName = "multipart",
        retries: int | Retry = 2,
        max_parts: int | None = None,
        max_body_size: int | None = None,
        discover: bool = True,
        split: bool = True,
        concurrency: int = 1,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._configure(
            format=format,
            retries=retries,
            max_parts=max_parts,
            max_body_size=max_body_size,
            discover=discover,
            split=split,
            concurrency=concurrency,
        )
        super().__init__(batch_url)
        self._transport = transport if transport is not None else httpx.HTTPTransport()
        self._sleep = sleep
        self._scopes: weakref.WeakSet[BatchScope] = weakref.WeakSet()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """A request made directly through the client is not batched: it passes through."""
        return self._transport.handle_request(request)

    def close(self) -> None:
        """Close the wrapped transport. Batch scopes still holding requests are dropped: their
        responses raise :class:`BatchNotSent` when read, and an
        :class:`UnsentRequestsWarning` says so now."""
        for scope in list(self._scopes):
            scope._drop("the BatchTransport was closed before its batch scope was sent", 3)
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

    def send_all(self, requests: Iterable[httpx.Request]) -> list[httpx.Response]:
        """Send ``requests`` (batching those that can be) and return their responses in
        order; raises :class:`BatchFailed` (with ``responses``) if any got no answer."""
        requests = list(requests)
        batched = [index for index, request in enumerate(requests) if self.batchable(request)]
        entries = [self._entry(requests[i], requests[i].read()) for i in batched]
        responses: list[httpx.Response | None] = [None] * len(requests)
        failures: list[tuple[httpx.Request, Failed[httpx.Response]]] = []
        for index, entry, result in zip(batched, entries, self.exchange(entries), strict=True):
            if isinstance(result, Answered):
                responses[index] = _read(_response(result, entry.request))
            else:
                failures.append((entry.request, result))
        others = set(range(len(requests))) - set(batched)
        for index in sorted(others):
            responses[index] = _read(self._passed_through(requests[index]))
        if failures:
            raise _failure(failures, len(requests), responses)
        return [response for response in responses if response is not None]

    def exchange(
        self, entries: Sequence[_Entry]
    ) -> list[Answered[httpx.Response] | Failed[httpx.Response]]:
        """Send ``entries`` as batches until each has its final result."""
        if not entries:
            return []
        run = self._run(entries)
        drive(
            run,
            functools.partial(self._post, entries),
            discover=functools.partial(self._discover, entries),
            sleep=self._sleep,
            concurrency=self.concurrency,
            timed_out=httpx.TimeoutException,
        )
        return list(run.results())

    def _passed_through(self, request: httpx.Request) -> httpx.Response:
        response = self._transport.handle_request(request)
        response.request = request
        return response

    def _post(
        self, entries: Sequence[_Entry], send: Send, deadline: float | None
    ) -> Reply[httpx.Response] | Lost:
        request = self._outer_request("POST", entries, deadline, send)
        started = time.perf_counter()
        try:
            response = self._exchange(request, deadline)
        except httpx.TransportError as error:
            return Lost(error, sent_nothing=isinstance(error, _SENT_NOTHING))
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        return _reply(response, response.content)

    def _discover(self, entries: Sequence[_Entry], deadline: float | None) -> object:
        try:
            response = self._exchange(self._outer_request("GET", entries, deadline), deadline)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def _exchange(self, request: httpx.Request, deadline: float | None) -> httpx.Response:
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


class BatchScope:
    """Requests queued by :meth:`BatchTransport.batch`, sent when the ``with`` block ends
    (or on :meth:`send`). Each call returns a :class:`BatchResponse` at once."""

    def __init__(self, transport: BatchTransport, client: httpx.Client | None) -> None:
        self._transport = transport
        self._client = client
        self._queue: list[tuple[_Entry | None, BatchResponse]] = []
        self._positions: dict[int, int] = {}

    @property
    def pending(self) -> int:
        """How many requests wait for the next batch."""
        return len(self._queue)

    def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        params: Any = None,
        headers: Any = None,
        cookies: Any = None,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        extensions: Any = None,
        depends_on: Iterable[httpx.Response] = (),
    ) -> BatchResponse:
        """Queue a request, built as ``httpx.Client.request`` builds it.

        ``depends_on``: responses queued earlier in this scope; the server runs this request
        only if each of them succeeds (2xx), and answers it 424 otherwise. ``timeout`` bounds
        the batch it goes in. A batched request's redirect comes back as its answer:
        ``follow_redirects=True`` raises ``ValueError``, as does an extension other than
        ``timeout`` (it needs a connection of the request's own).
        """
        if follow_redirects is True:
            raise ValueError(
                "follow_redirects=True cannot be honoured in a batch scope: a batched "
                "request's redirect comes back as its answer (a 3xx), it is not followed; "
                "leave follow_redirects out or pass False"
            )
        client = self._client
        if client is not None:
            request = client.build_request(
                method,
                url,
                content=content,
                data=data,
                files=files,
                json=json,
                params=params,
                headers=headers,
                cookies=cookies,
                timeout=timeout,
                extensions=extensions,
            )
            if auth is httpx.USE_CLIENT_DEFAULT:
                auth = client.auth
        else:
            request = httpx.Request(
                method,
                url,
                content=content,
                data=data,
                files=files,
                json=json,
                params=params,
                headers=headers,
                cookies=cookies,
                extensions=extensions,
            )
            if timeout is not httpx.USE_CLIENT_DEFAULT:
                request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
            request.extensions.setdefault("timeout", _DEFAULT_TIMEOUT)
        request = _authenticate(request, None if auth is httpx.USE_CLIENT_DEFAULT else auth)
        positions = []
        for dependency in depends_on:
            position = self._positions.get(id(dependency))
            if position is None or self._queue[position][1] is not dependency:
                raise ValueError("depends_on must name responses queued earlier in this scope")
            if self._queue[position][0] is None:
                raise ValueError("depends_on can only name requests that are batched")
            positions.append(position)
        if client is not None:
            for hook in client.event_hooks["request"]:
                hook(request)
        body = request.read()
        entry = None
        if self._transport.batchable(request):
            entry = self._transport._entry(request, body, tuple(positions))
        elif positions:
            raise ValueError(f"{request.url} is not batched, so it cannot depend on others")
        response = BatchResponse(request)
        self._positions[id(response)] = len(self._queue)
        self._queue.append((entry, response))
        return response

    def get(self, url: httpx.URL | str, **kwargs: Any) -> BatchResponse:
        return self.request("GET", url, **kwargs)

    def head(self, url: httpx.URL | str, **kwargs: Any) -> BatchResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: httpx.URL | str, **kwargs: Any) -> BatchResponse:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: httpx.URL | str, **kwargs: Any) -> BatchResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: httpx.URL | str, **kwargs: Any) -> BatchResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: httpx.URL | str, **kwargs: Any) -> BatchResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: httpx.URL | str, **kwargs: Any) -> BatchResponse:
        return self.request("DELETE", url, **kwargs)

    def send(self) -> list[BatchResponse]:
        """Send what is queued (batched, and the others one by one, in order); fill and
        return the responses. Raises :class:`BatchFailed` if any got no answer."""
        queue, self._queue = self._queue, []
        self._positions = {}
        entries = [entry for entry, _ in queue if entry is not None]
        # Positions in the queue become positions among the batched entries.
        renumber: dict[int, int] = {}
        for position, (entry, _) in enumerate(queue):
            if entry is not None:
                renumber[position] = len(renumber)
        for entry in entries:
            entry.depends_on = tuple(renumber[d] for d in entry.depends_on)
        try:
            results = iter(self._transport.exchange(entries))
        except BaseException as error:
            for _, response in queue:
                response._pending = f"the batch could not be sent: {error}"
            raise
        failures: list[tuple[httpx.Request, Failed[httpx.Response]]] = []
        for entry, response in queue:
            request = response._request
            assert request is not None
            if entry is not None:
                result = next(results)
                if isinstance(result, Answered):
                    _fill(response, _response(result, request), _elapsed(result))
                else:
                    response._pending = result.reason
                    failures.append((request, result))
        # Then the requests that are not batched, one by one, in order.
        passing = [response for entry, response in queue if entry is None]
        for index, response in enumerate(passing):
            request = response._request
            assert request is not None
            try:
                started = time.perf_counter()
                _fill(response, self._transport._passed_through(request))
                response.elapsed = timedelta(seconds=time.perf_counter() - started)
            except BaseException as error:
                for unsent in passing[index:]:
                    unsent._pending = f"the request could not be sent: {error}"
                raise
        client = self._client
        for _, response in queue:
            if response._pending is None and client is not None:
                client.cookies.extract_cookies(response)
        if client is not None:  # hooks run once every answer is in place
            for _, response in queue:
                if response._pending is None:
                    for hook in client.event_hooks["response"]:
                        hook(response)
        if failures:
            raise _failure(failures, len(queue), [r for _, r in queue])
        return [response for _, response in queue]

    def __enter__(self) -> BatchScope:
        return self

    def __del__(self) -> None:
        self._drop("a batch scope was garbage-collected before it was sent", 2)

    def _drop(self, what: str, stacklevel: int) -> None:
        """Drop the queued requests unsent: their responses say why, a warning says so now."""
        queue = getattr(self, "_queue", None)  # None if __init__ failed
        if queue:
            self._queue, self._positions = [], {}
            unsent = [(r, r.request.method, str(r.request.url)) for _, r in queue]
            drop_unsent(what, unsent, stacklevel)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.send()
        else:
            for _, response in self._queue:
                response._pending = "the batch was not sent: its `with` block raised"
            self._queue = []


class AsyncBatchTransport(_Base, httpx.AsyncBaseTransport):
    """An async httpx transport that batches concurrent requests transparently.

    A request to the batch endpoint's origin opens a *window* (or joins the open one). The
    window closes when a pass of the event loop brings no new request (the other ready tasks
    have run), after ``window`` seconds at most (default 2 ms), or when it holds
    ``max_batch`` requests (default: the endpoint's ``max_parts`` as known so far). Its
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
        format: FormatName = "multipart",
        retries: int | Retry = 2,
        max_parts: int | None = None,
        max_body_size: int | None = None,
        discover: bool = True,
        split: bool = True,
        concurrency: int = 1,
        window: float = 0.002,
        max_batch: int | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._configure(
            format=format,
            retries=retries,
            max_parts=max_parts,
            max_body_size=max_body_size,
            discover=discover,
            split=split,
            concurrency=concurrency,
        )
        super().__init__(batch_url)
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
        entry = self._entry(request, await request.aread())
        entry.future = asyncio.get_running_loop().create_future()
        window = self._open
        if window is None:
            window = self._open = _Window()
            task = asyncio.ensure_future(self._collect(window))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        window.entries.append(entry)
        if len(window.entries) >= (self.max_batch or self.limits.max_parts):
            window.full = True
            self._open = None  # the next request opens a new window
        return await entry.future

    async def send_all(self, requests: Iterable[httpx.Request]) -> list[httpx.Response]:
        """Send ``requests`` now, batching those that can be, and return their responses in
        order; raises :class:`BatchFailed` (with ``responses``) if any got no answer."""
        requests = list(requests)
        batched = [index for index, request in enumerate(requests) if self.batchable(request)]
        entries = [self._entry(requests[i], await requests[i].aread()) for i in batched]
        responses: list[httpx.Response | None] = [None] * len(requests)

        async def passed_through(index: int) -> None:
            request = requests[index]
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
            response.request = request
            responses[index] = response

        others = sorted(set(range(len(requests))) - set(batched))
        passing = [asyncio.ensure_future(passed_through(index)) for index in others]
        try:
            results = await self.exchange(entries)
            await asyncio.gather(*passing)
        finally:
            for task in passing:
                task.cancel()
        failures: list[tuple[httpx.Request, Failed[httpx.Response]]] = []
        for index, entry, result in zip(batched, entries, results, strict=True):
            if isinstance(result, Answered):
                responses[index] = await _aread(_response(result, entry.request))
            else:
                failures.append((entry.request, result))
        if failures:
            raise _failure(failures, len(requests), responses)
        return [response for response in responses if response is not None]

    async def exchange(
        self, entries: Sequence[_Entry]
    ) -> list[Answered[httpx.Response] | Failed[httpx.Response]]:
        """Send ``entries`` as batches until each has its final result."""
        if not entries:
            return []
        run = self._run(entries)
        limits = self.limits

        async def discover() -> None:
            async with self._discovery_lock():  # one discovery at a time; the first counts
                if limits.discoverable:
                    asked = functools.partial(self._discover, entries)
                    limits.discovered(await call_within_async(run.timeout, asked, lambda: None))

        await drive_async(
            run,
            functools.partial(self._post, entries),
            discover=discover,
            sleep=self._sleep,
            concurrency=self.concurrency,
            timed_out=httpx.TimeoutException,
        )
        return list(run.results())

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
                entry.future.set_result(_response(result, entry.request))
            else:
                failure = BatchFailed(
                    result.reason,
                    request=entry.request,
                    response=result.outer,
                    requests=[entry.request],
                )
                failure.__cause__ = result.error
                entry.future.set_exception(failure)

    async def _post(
        self, entries: Sequence[_Entry], send: Send, deadline: float | None
    ) -> Reply[httpx.Response] | Lost:
        request = self._outer_request("POST", entries, deadline, send)
        started = time.perf_counter()
        try:
            response = await self._transport.handle_async_request(request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as error:
            return Lost(error, sent_nothing=isinstance(error, _SENT_NOTHING))
        response.request = request
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        return _reply(response, body)

    async def _discover(self, entries: Sequence[_Entry], deadline: float | None) -> object:
        try:
            response = await self._transport.handle_async_request(
                self._outer_request("GET", entries, deadline)
            )
            try:
                await response.aread()
            finally:
                await response.aclose()
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None


@dataclass
class _Window:
    """Requests collected for the next batch."""

    entries: list[_Entry] = field(default_factory=list)
    full: bool = False


def _abandoned(entry: _Entry) -> bool:
    return entry.future is None or entry.future.done()


def _reject(entry: _Entry, reason: str, error: BaseException) -> None:
    if not _abandoned(entry):
        assert entry.future is not None
        failure = BatchFailed(reason, request=entry.request, requests=[entry.request])
        failure.__cause__ = error
        entry.future.set_exception(failure)


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme, 0)


def _sub_request(request: httpx.Request, body: bytes) -> SubRequest:
    headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in request.headers.raw
        if name.decode("latin-1").lower() not in _NOT_IN_PART
    )
    return SubRequest(request.method, request.url.raw_path.decode("ascii"), headers, body)


def _shared_headers(requests: Sequence[httpx.Request]) -> list[tuple[bytes, bytes]]:
    """The headers every request carries with the same value (each part keeps its own)."""
    if not requests:
        return []
    shared = [
        (name, value)
        for name, value in requests[0].headers.raw
        if name.decode("latin-1").lower() not in _NOT_SHARED
        and not name.lower().startswith(b"content-")
    ]
    for request in requests[1:]:
        present = set(request.headers.raw)
        shared = [field for field in shared if field in present]
    return shared


def _reply(response: httpx.Response, body: bytes) -> Reply[httpx.Response]:
    return Reply(
        response.status_code,
        response.reason_phrase,
        response.headers.get("Content-Type"),
        response.headers.get("Retry-After"),
        body,
        response,
    )


def _raw(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _response(result: Answered[httpx.Response], request: httpx.Request) -> httpx.Response:
    """The ``httpx.Response`` a sub-response stands for, as a transport returns it."""
    answer: SubResponse = result.response
    extensions = {
        "http_version": b"HTTP/1.1",
        "reason_phrase": answer.reason.encode("latin-1", "replace"),
        ATTEMPTS: result.attempts,
    }
    return httpx.Response(
        answer.status,
        headers=_raw(answer.headers),
        stream=httpx.ByteStream(bytes(answer.body)),  # read from the wire: bytes, not copied
        request=request,
        extensions=extensions,
    )


def _elapsed(result: Answered[httpx.Response]) -> timedelta:
    """How long the batch that brought ``result`` took."""
    outer = result.outer
    return outer.elapsed if outer is not None else timedelta(0)


def _read(response: httpx.Response) -> httpx.Response:
    try:
        response.read()
    finally:
        response.close()
    return response


async def _aread(response: httpx.Response) -> httpx.Response:
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


def _fill(target: BatchResponse, source: httpx.Response, elapsed: timedelta = timedelta(0)) -> None:
    """Make the pending ``target`` the response ``source`` is, and read it."""
    httpx.Response.__init__(
        target,
        source.status_code,
        headers=source.headers,
        stream=source.stream,
        request=source.request,
        extensions=source.extensions,
    )
    target._pending = None
    _read(target)
    target.elapsed = elapsed


def _authenticate(request: httpx.Request, auth: Any) -> httpx.Request:
    """``request`` with ``auth`` applied (the first step of its flow: Basic, Bearer-style)."""
    if auth is None:
        return request
    if isinstance(auth, tuple):
        auth = httpx.BasicAuth(*auth)
    if isinstance(auth, httpx.Auth):
        return next(auth.sync_auth_flow(request))
    if callable(auth):
        authenticated: httpx.Request = auth(request)
        return authenticated
    raise TypeError(f"invalid auth {auth!r}")


def _failure(
    failures: Sequence[tuple[httpx.Request, Failed[httpx.Response]]],
    total: int,
    responses: Sequence[httpx.Response | None],
) -> BatchFailed:
    reasons = {failure.reason for _, failure in failures}
    first = failures[0][1]
    count = len(failures)
    if len(reasons) == 1:
        message = first.reason if count == total else f"{first.reason} ({count} of {total})"
    else:
        message = f"{count} of {total} requests failed; the first: {first.reason}"
    outer = next((f.outer for _, f in failures if f.outer is not None), None)
    error = BatchFailed(
        message,
        request=failures[0][0],
        response=outer,
        requests=[request for request, _ in failures],
        responses=responses,
    )
    error.__cause__ = next((f.error for _, f in failures if f.error is not None), None)
    return error
