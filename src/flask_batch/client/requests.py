"""The ``requests`` front end: a ``requests.Session`` that queues its requests and sends them
as one batch.

Every queued request gets a :class:`RequestsBatchResponse` at once: a real
``requests.Response``, filled in place when the batch is sent (when the ``with`` block
exits, or on :meth:`Batching.send_batch`). Answers are matched to requests by Content-ID.
The session only adapts: what a batch exchange means is the client core's
(:mod:`flask_batch.client._core`), the loop that does the I/O is
:func:`~flask_batch.client._drivers.drive`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any, NamedTuple, Unpack
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.exceptions import ChunkedEncodingError
from requests.hooks import default_hooks, dispatch_hook

from ..observe import FAILURES_HEADER
from ..wire.model import SubRequest
from ..wire.multipart_answers import ReadAnswer
from ._core.limits import description
from ._core.model import (
    Answered,
    Arrival,
    Failed,
    Lost,
    PreparedBatch,
    Reply,
    Result,
    smallest,
)
from ._core.options import ClientOptions, Options
from ._core.outcome import SentBatch, attempt_of, outers_of, reported_failures
from ._core.pending import BatchNotSent, BatchResponse, UnsentRequestsWarning
from ._core.queueing import (
    Changeset,
    Queue,
    check_content_id,
    is_reference,
    origin,
    reference_target,
)
from ._core.report import BatchFailed
from ._core.run import Run
from ._drivers import (
    KEPT_CONNECTIONS,
    KNOWN_ENDPOINTS,
    SharedPools,
    drive,
    read_within,
    remaining,
)
from ._requests_messages import (
    Filling,
    Phases,
    Queued,
    RequestsBatchFailed,
    RequestsBatchResponse,
    TransportArguments,
    failure,
    fill,
    filling,
    forget_body,
    part_of,
    phases,
    pieces,
    reply,
    sent_nothing,
    timeout_of,
)
from ._requests_prepare import FastPreparer

__all__ = [
    "BatchFailed",
    "BatchNotSent",
    "BatchResponse",
    "Batching",
    "Changeset",
    "RequestsBatchFailed",
    "RequestsBatchResponse",
    "SentBatch",
    "UnsentRequestsWarning",
]

#: The connections to batch endpoints, kept open across sessions (docs/clients/index.md,
#: "Connections"): one adapter per origin, TLS settings and proxies.
_SHARED_ADAPTERS = SharedPools(
    lambda: HTTPAdapter(pool_connections=1, pool_maxsize=KEPT_CONNECTIONS), HTTPAdapter.close
)


class Batching(requests.Session, ClientOptions[requests.Response]):
    """Queue requests, then send them to ``batch_url`` in one HTTP request.

    ::

        with Batching("http://localhost:5000/batch") as s:
            alice = s.patch("http://localhost:5000/people/alice/", json={"age": 31})
        alice.status_code, alice.json()   # filled in when the block exits

    Only requests to the batch URL's own origin can be batched. Sub-responses are not
    redirected (a 3xx is returned as it is).

    - ``timeout``: seconds the whole exchange of one batch may take (connect, send, the whole
      answer), or a ``(connect, read)`` pair (then ``connect + read`` in all); a request's
      own ``timeout=`` replaces it, and a batch ends by the smallest of its requests'.

    - ``retries``: re-sends of a part answered 429 or 503, or of a batch lost as a whole
      (an int, 2 by default: 3 attempts in all; 0 turns retrying off), or a
      :class:`~flask_batch.client.Retry` for every detail (POST and PATCH are retried only
      with ``Retry(methods=None)``).
    - ``max_parts``, ``max_body_size``: never send larger batches (by default the endpoint's
      limits, discovered or learned from a 413, or its defaults: 100 parts, 16 MiB).
    - ``discover``: ask the endpoint for its limits (``GET`` on the batch URL) before a queue
      would be split, unless a client of the URL did already (what clients learn of an
      endpoint outlives them: docs/clients/index.md, "What a client knows of its
      endpoint"). ``split=False``: one batch, whatever its size.
    - ``compress_bodies``: send large batch bodies in gzip once the endpoint said it takes
      them (None, the default), from the first batch (True: an endpoint known to take them;
      a ``415`` still sends the batch again as it is), or never (False).
    - ``concurrency``: batches of one queue in flight at once (6 by default; 1: one after
      another). Connections to the batch endpoint outlive the session (docs/clients/index.md,
      "Connections").
    - ``sleep``: how to wait before a retry (``time.sleep``; tests pass a fake).
    """

    def __init__(
        self,
        batch_url: str,
        *,
        timeout: float | tuple[float, float] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        **options: Unpack[Options],
    ) -> None:
        self._queue: Queue[Queued, RequestsBatchResponse] = Queue()
        super().__init__()
        #: The adapters requests mounted itself, as they were: the batch requests they would
        #: carry take a shared, warm one instead (:meth:`get_adapter`).
        self._stock = [
            (adapter, adapter.max_retries, adapter.poolmanager)
            for adapter in self.adapters.values()
            if isinstance(adapter, HTTPAdapter)
        ]
        #: The environment's settings for the batch URL while a send is under way.
        self._environment: Mapping[str, Any] | None = None
        self._configure(shared=functools.partial(KNOWN_ENDPOINTS.of, batch_url), **options)
        timeout_of(timeout)  # refuse now what could not bound a batch
        self._last_arguments: _LastArguments | None = None
        self.batch_url = batch_url
        self.timeout = timeout
        self._sleep = sleep
        #: What the last :meth:`send_batch` (or ``with`` block) sent came to, or None.
        self.last_batch: SentBatch[RequestsBatchResponse] | None = None
        self._origin = _origin(batch_url)
        parts = urlsplit(batch_url)
        #: A URL that starts with this has the batch URL's origin: no need to parse it.
        self._origin_prefix = f"{parts.scheme}://{parts.netloc}/"
        self._preparer = FastPreparer(self._origin_prefix)

    def request(  # noqa: PLR0917 (requests.Session.request's positional signature)
        self,
        method: str | bytes,
        url: str | bytes,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool | None = None,
        proxies: Any = None,
        hooks: Any = None,
        stream: bool | None = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
        *,
        depends_on: Iterable[requests.Response | Changeset] = (),
        content_id: str | None = None,
    ) -> requests.Response:
        """Queue a request, as ``requests.Session.request`` would send it.

        ``depends_on``: responses (or changesets) queued earlier in this batch; the server
        runs this request only if each of them succeeds (2xx), and answers it 424 otherwise.
        ``content_id``: the request's id in its batch (letters, digits, ``-._~``), by which a
        later request refers to what it created: a URL starting with ``$<id>``
        (``s.post("$1/items")``) is sent as written, for the server to resolve. ``timeout`` bounds
        the batch the request goes in; ``stream=True`` leaves the body in ``raw`` to be read
        (it arrived whole, with the batch); ``hooks`` run on the filled response. The
        arguments that only a connection of its own could honour raise ``ValueError``:
        ``allow_redirects=True``, and ``proxies``, ``verify`` or ``cert`` other than the
        session's (the batch request takes those from the session and the environment).
        """
        arguments = self._arguments(
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            stream=stream,
            verify=verify,
            cert=cert,
        )
        if isinstance(method, bytes):
            method = method.decode("ascii")
        if isinstance(url, bytes):
            url = url.decode("utf-8")
        # A reference has no origin: it is built as the URL it names relative to the batch URL.
        reference = url if is_reference(url) else None
        if reference is None:
            fast = self._preparer.prepare(
                self, method, url, params, data, headers, cookies, files, auth, hooks, json
            )
            if fast is not None:
                request, part = fast
                return self._enqueue(request, depends_on, arguments, content_id, part=part)
        prepared = self.prepare_request(
            requests.Request(
                method=method.upper(),
                url=url if reference is None else urljoin(self.batch_url, url),
                headers=headers,
                files=files,
                data=data or {},
                json=json,
                params=params or {},
                auth=auth,
                cookies=cookies,
                hooks=hooks,
            )
        )
        return self._enqueue(prepared, depends_on, arguments, content_id, reference)

    def changeset(self) -> AbstractContextManager[Changeset]:
        """A block whose requests are one atomic group, which the server applies whole or not
        at all (a changeset; with ``format="json"``, an ``atomicityGroup``)::

            with Batching(url) as s:
                with s.changeset() as transfer:
                    s.post(f"{base}/accounts/a/debits", json={"amount": 5})
                    s.post(f"{base}/accounts/b/credits", json={"amount": 5})
                s.get(f"{base}/accounts", depends_on=[transfer])

        A group always goes in one batch; it is retried as a whole or not at all. If the block
        raises, its requests are taken back unsent. Changesets do not nest, and the batch
        cannot be sent inside one.
        """
        return self._queue.changeset()

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        # requests.Session.get would pass allow_redirects=True, which a batch cannot honour.
        return self.request("GET", url, **kwargs)

    def options(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        return self.request("OPTIONS", url, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Queue ``request``; its response is filled when the batch is sent. The keyword
        arguments are the transport arguments of :meth:`request` (``timeout``, ``stream``,
        ``allow_redirects``, ``proxies``, ``verify``, ``cert``), honoured or refused alike."""
        return self._enqueue(request, (), self._arguments(**kwargs))

    def _arguments(
        self,
        *,
        timeout: Any = None,
        allow_redirects: bool | None = None,
        proxies: Any = None,
        stream: bool | None = None,
        verify: Any = None,
        cert: Any = None,
    ) -> TransportArguments:
        """What a request's transport arguments mean in a batch; ``ValueError`` for those
        that only a connection of its own could honour."""
        if allow_redirects:
            raise ValueError(
                "allow_redirects=True cannot be honoured in a batch: a batched request's "
                "redirect comes back as its answer (a 3xx), it is not followed; leave "
                "allow_redirects out or pass False"
            )
        for name, value, session_value in (
            ("proxies", proxies or None, self.proxies),
            ("verify", verify, self.verify),
            ("cert", cert, self.cert),
        ):
            if value is not None and value != session_value:
                raise ValueError(
                    f"{name}={value!r} cannot be honoured in a batch: a batched request "
                    f"travels in the batch request, which takes {name} from the session; "
                    f"set session.{name} instead"
                )
        timeout = self.timeout if timeout is None else timeout
        stream = self.stream if stream is None else bool(stream)
        last = self._last_arguments
        if last is not None and last.timeout is timeout and last.arguments.stream is stream:
            return last.arguments  # the same objects as last time: the same meaning
        timeouts, total = timeout_of(timeout)
        arguments = TransportArguments(timeouts, total, stream)
        self._last_arguments = _LastArguments(timeout, arguments)
        return arguments

    def _enqueue(
        self,
        request: requests.PreparedRequest,
        dependencies: Iterable[requests.Response | Changeset],
        arguments: TransportArguments,
        content_id: str | None = None,
        reference: str | None = None,
        *,
        part: SubRequest | None = None,
    ) -> RequestsBatchResponse:
        """Queue a prepared request; ``part``: the part that carries it, if made already."""
        url = request.url
        if url is None or not (url.startswith(self._origin_prefix) or _origin(url) == self._origin):
            raise ValueError(
                f"{url} cannot be batched: only requests to the batch endpoint's "
                f"origin {self.batch_url} can"
            )
        depends_on = self._queue.positions(dependencies, "batch")
        target = None if reference is None else reference_target(reference, urlsplit(url).query)
        sub_request = part or part_of(request, target)
        referenced = self._queue.referenced(target, sub_request.headers)
        depends_on = tuple(dict.fromkeys((*depends_on, *referenced)))
        if content_id is not None:
            sub_request = sub_request._replace(content_id=check_content_id(content_id))
        group = self._queue.open
        self._format.check(sub_request, in_group=group is not None)  # refuse it now
        response = RequestsBatchResponse()
        response.request = request
        response.url = url
        queued = Queued(request, sub_request, depends_on, arguments, group)
        self._queue.add(queued, response, content_id)
        return response

    @property
    def pending(self) -> int:
        """How many requests wait for the next batch."""
        return len(self._queue)

    def send_batch(self) -> SentBatch[RequestsBatchResponse]:
        """Send the queued requests; fill and return their responses in order.

        They go as one batch, or as several if they exceed the endpoint's limits; parts
        answered 429 or 503 (and batches lost as a whole) are retried as ``retries`` says.
        The list returned, also kept as :attr:`last_batch` (it is there when this raises
        because some requests got no answer), says what they came to: ``ok``, ``failed()``,
        ``retry_failed()`` (docs/clients/index.md, "What a batch came to").
        """
        queued = self._queue.take()
        self._preparer.new_batch()
        results = self._send(queued)
        self.last_batch = SentBatch(
            [response for _, response in queued],
            [
                attempt_of(item.sub_request, item.depends_on, result)
                for (item, _), result in zip(queued, results, strict=True)
            ],
            self.retry,
            functools.partial(self._resend, queued),
            reported_failures([outer.headers.get(FAILURES_HEADER) for outer in outers_of(results)]),
        )
        failures = [
            (item, result)
            for (item, _), result in zip(queued, results, strict=True)
            if isinstance(result, Failed)
        ]
        if failures:
            raise failure(failures, len(queued))
        return self.last_batch

    def _resend(
        self, queued: list[tuple[Queued, RequestsBatchResponse]], positions: list[int]
    ) -> list[int | None]:
        """Send the requests of ``queued`` at ``positions`` again (:meth:`SentBatch.retry_failed`),
        with their dependencies among them; each one's new status (None: no answer)."""
        place = {position: number for number, position in enumerate(positions)}
        again = [
            (
                item._replace(depends_on=tuple(place[d] for d in item.depends_on if d in place)),
                response,
            )
            for item, response in (queued[position] for position in positions)
        ]
        self._send(again)
        return [
            None if response._pending is not None else response.status_code for _, response in again
        ]

    def _send(
        self, queued: list[tuple[Queued, RequestsBatchResponse]]
    ) -> list[Result[requests.Response]]:
        """Send ``queued``; fill each answered response in place, and say why on the others."""
        if not queued:
            return []
        queue = [item for item, _ in queued]
        run = self._run(queue)
        #: How each response is filled, worked out as its answer arrived (``_post``).
        ahead: dict[int, Filling] = {}
        try:
            self._environment = self._environment_settings()
            drive(
                run,
                functools.partial(self._post, queue, run, ahead),
                discover=functools.partial(self._discover, queue),
                sleep=self._sleep,
                timed_out=requests.Timeout,
            )
        except BaseException as error:
            for _, response in queued:
                if response._pending is not None:  # one sent again keeps its last answer
                    response._pending = f"the batch could not be sent: {error}"
            raise
        finally:
            self._environment = None
        results = run.results()
        for index, ((item, response), result) in enumerate(zip(queued, results, strict=True)):
            if isinstance(result, Answered):
                outer = result.outer
                elapsed = outer.elapsed if outer is not None else timedelta(0)
                if response._pending is None:  # answered before: sent again by retry_failed()
                    forget_body(response)
                fill(
                    response,
                    item,
                    result.response,
                    elapsed=elapsed,
                    session_cookies=self.cookies,
                    ahead=ahead.get(index),
                )
            elif response._pending is not None:  # one sent again keeps its last answer
                response._pending = result.reason
            response.attempts = result.attempts
        # Hooks run once every answer is in place, so a raising hook loses none of them.
        for item, response in queued:
            if response._pending is None:
                dispatch_hook("response", item.request.hooks, response)  # type: ignore[no-untyped-call]
        return results

    def _post(
        self,
        queue: list[Queued],
        run: Run[requests.Response],
        ahead: dict[int, Filling],
        batch: PreparedBatch,
        deadline: float | None,
    ) -> Reply[requests.Response] | Lost:
        """POST one batch; a lost connection or a timeout is an outcome, not an exception.

        Its answer is read as it arrives (:meth:`Run.arrival`), and how each response would be
        filled with its answer is worked out then, into ``ahead``, while the server still
        writes the next answers. This may run in a thread of the driver's, so it changes
        nothing shared: the run decides what the answers mean once the exchange is back, and
        :meth:`_send` fills the responses then."""
        request = self._own_request("POST", data=batch.body, headers=dict(batch.headers))

        def arriving(response: requests.Response) -> Arrival | None:
            arrival = run.arrival(batch, response.status_code, response.headers.get("Content-Type"))
            if arrival is not None:
                elapsed = response.elapsed

                def work_out(answers: list[ReadAnswer]) -> None:
                    for answer in answers:
                        index = run.whose(answer)
                        if index is not None and index in arrival.items:
                            ahead[index] = filling(queue[index], answer.response, elapsed)

                arrival.then = work_out
            return arrival

        try:
            response, body, arrival = self._exchange(
                request, phases(queue[index] for index in batch.items), deadline, arriving
            )
        except (requests.ConnectionError, requests.Timeout, ChunkedEncodingError) as error:
            return Lost(error, sent_nothing=sent_nothing(error))
        return reply(response, body, arrival)

    def _discover(self, queue: list[Queued], deadline: float | None) -> object:
        """The endpoint's description (GET on the batch URL), or None if that fails."""
        request = self._own_request("GET", headers={"Accept": "application/json"})
        try:
            response, body, _ = self._exchange(request, phases(queue), deadline)
        except (requests.RequestException, ValueError):
            return None
        return description(response.status_code, body)

    def _own_request(self, method: str, **arguments: Any) -> requests.PreparedRequest:
        """A request of the session's own (a batch, a discovery) to the batch URL."""
        prepared = None
        if arguments.keys() <= {"data", "headers"}:
            prepared = self._preparer.prepare(self, method, self.batch_url, **arguments)
        if prepared is not None:
            request = prepared[0]
        else:
            request = self.prepare_request(requests.Request(method, self.batch_url, **arguments))
        request.hooks = default_hooks()  # session hooks see each sub-response, not the batch
        return request

    def _exchange(
        self,
        request: requests.PreparedRequest,
        timeouts: Phases,
        deadline: float | None,
        arriving: Callable[[requests.Response], Arrival | None] | None = None,
    ) -> tuple[requests.Response, bytes, Arrival | None]:
        """Send a request of the session's own and read its whole answer by ``deadline``: each
        wait is bounded by the time left, and the answer is read in pieces with the deadline
        checked after each (``Overdue`` once it passed), each piece also given to the
        :class:`Arrival` that ``arriving`` makes of the answer's head, if any."""
        left = remaining(deadline)
        timeout = (smallest([timeouts[0], left]), smallest([timeouts[1], left]))
        response = requests.Session.send(
            self, request, timeout=timeout, allow_redirects=False, **self._environment_settings()
        )
        try:
            if isinstance(response._content, bytes) or not hasattr(response.raw, "read1"):
                # Read already (an adapter that does not stream), or not urllib3's: as it comes.
                return response, response.content, None
            arrival = None if arriving is None else arriving(response)
            body = read_within(pieces(response.raw), deadline, arrival)
        finally:
            response.close()  # the connection goes back to the pool only if read to its end
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]  # not in the stubs
        return response, body, arrival

    def get_adapter(self, url: str) -> BaseAdapter:
        """The adapter for ``url`` (the batch URL): a shared one, whose connections outlive
        this session, in place of one requests mounted itself and nobody changed; an
        adapter of the user's own as it is. Shared only with sessions whose TLS settings
        and proxies for ``url`` (with the environment's) are the same."""
        adapter = super().get_adapter(url)
        if not any(
            adapter is stock and adapter.max_retries is retries and adapter.poolmanager is pools
            for stock, retries, pools in self._stock
        ):
            return adapter
        settings = self._environment_settings(url)
        proxies = tuple(sorted(settings["proxies"].items()))
        key = (_origin(url), settings["verify"], settings["cert"], proxies)
        return _SHARED_ADAPTERS.get(key)

    def _environment_settings(self, url: str | None = None) -> Mapping[str, Any]:
        """The proxies, CA bundle and TLS settings a request of the session's own to ``url``
        (the batch URL by default) is sent with, the environment's merged in as
        ``Session.request`` merges them. Worked out once per :meth:`send_batch` (about
        0.1 ms; requests works them out once per request, and a batch is one request),
        shared by its batches, its discovery and the adapter they are sent through."""
        url = url or self.batch_url
        if self._environment is not None and url == self.batch_url:
            return self._environment
        return self.merge_environment_settings(url, {}, True, None, None)

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.send_batch()
            else:
                self._queue.abandon("the batch was not sent: its `with` block raised")
        finally:
            self.close()

    def close(self) -> None:
        """Close the session's own connections (not those it shares: docs/clients/index.md,
        "Connections"). Requests still queued are never sent: each of their
        responses raises :class:`BatchNotSent` when read, and an
        :class:`~flask_batch.client.UnsentRequestsWarning` says so now."""
        self._queue.drop("the Batching session was closed before send_batch()", 2)
        super().close()

    def __del__(self) -> None:
        what = "the Batching session was garbage-collected before send_batch()"
        self._queue.drop(what, 1)


class _LastArguments(NamedTuple):
    """The transport arguments last worked out, and the timeout they were worked out of."""

    timeout: object
    arguments: TransportArguments


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return origin(parts.scheme, parts.hostname or "", parts.port)
