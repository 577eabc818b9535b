"""Explicit batches of the sync httpx transport: :meth:`BatchTransport.batch` gives a
:class:`BatchScope`, whose requests are built as an ``httpx.Client`` builds them and sent as
one batch when it ends."""

from __future__ import annotations

import functools
import time
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ..observe import FAILURES_HEADER
from ._core.model import Answered, Failed, Result
from ._core.outcome import Attempt, SentBatch, outers_of, reported_failures
from ._core.queueing import Changeset, Queue, is_reference, reference_target, refers
from ._httpx_messages import (
    CONTENT_ID,
    DEFAULT_TIMEOUT,
    Entry,
    HttpxBatchResponse,
    failure,
    fill,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .httpx import BatchTransport


class BatchScope:
    """Requests queued by :meth:`BatchTransport.batch`, sent when the ``with`` block ends
    (or on :meth:`send`). Each call returns an :class:`HttpxBatchResponse` at once."""

    def __init__(self, transport: BatchTransport, client: httpx.Client | None) -> None:
        #: Each request, with its entry if it is batched (None: it passes through).
        self._queue: Queue[Entry | None, HttpxBatchResponse] = Queue()
        self._transport = transport
        self._client = client
        #: What the last :meth:`send` (or ``with`` block) sent came to, or None.
        self.last_batch: SentBatch[HttpxBatchResponse] | None = None

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
        depends_on: Iterable[httpx.Response | Changeset] = (),
        content_id: str | None = None,
    ) -> HttpxBatchResponse:
        """Queue a request, built as ``httpx.Client.request`` builds it.

        ``depends_on``: responses (or changesets) queued earlier in this scope; the server
        runs this request only if each of them succeeds (2xx), and answers it 424 otherwise.
        ``content_id``: its id in the batch (letters, digits, ``-._~``), by which a later
        request refers to what it created: a URL starting with ``$<id>``
        (``scope.post("$1/items")``) is sent as written, for the server to resolve.
        ``timeout`` bounds the batch it goes in. A batched request's redirect comes back as
        its answer:
        ``follow_redirects=True`` raises ``ValueError``, as does an extension other than
        ``timeout`` (it needs a connection of the request's own).
        """
        if follow_redirects is True:
            raise ValueError(
                "follow_redirects=True cannot be honoured in a batch scope: a batched "
                "request's redirect comes back as its answer (a 3xx), it is not followed; "
                "leave follow_redirects out or pass False"
            )
        message: dict[str, Any] = {
            "content": content,
            "data": data,
            "files": files,
            "json": json,
            "params": params,
            "headers": headers,
            "cookies": cookies,
            "extensions": extensions,
        }
        if content_id is not None:
            extensions = {**(extensions or {}), CONTENT_ID: content_id}
            message["extensions"] = extensions
        # A reference has no origin: it is built as the URL it names relative to the batch URL.
        reference = str(url) if is_reference(str(url)) else None
        if reference is not None:
            url = self._transport.batch_url.join(reference)
        client = self._client
        if client is not None:
            request = client.build_request(method, url, timeout=timeout, **message)
            if auth is httpx.USE_CLIENT_DEFAULT:
                auth = client.auth
        else:
            request = httpx.Request(method, url, **message)
            if timeout is not httpx.USE_CLIENT_DEFAULT:
                request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
            request.extensions.setdefault("timeout", DEFAULT_TIMEOUT)
        request = _authenticate(request, None if auth is httpx.USE_CLIENT_DEFAULT else auth)
        positions = self._queue.positions(depends_on, "scope")
        if any(self._queue[position][0] is None for position in positions):
            raise ValueError("depends_on can only name requests that are batched")
        if client is not None:
            for hook in client.event_hooks["request"]:
                hook(request)
        body = request.read()
        entry = None
        group = self._queue.open
        if self._transport.batchable(request):
            target = None
            if reference is not None:
                target = reference_target(reference, request.url.query.decode("ascii"))
            entry = self._transport._entry(request, body, positions, target=target, group=group)
            referenced = self._queue.referenced(target, entry.sub_request.headers)
            entry.depends_on = tuple(dict.fromkeys((*positions, *referenced)))
        elif positions or group is not None:
            what = "depend on others" if positions else "be in a changeset"
            raise ValueError(f"{request.url} is not batched, so it cannot {what}")
        response = HttpxBatchResponse(request)
        self._queue.add(entry, response, content_id)
        return response

    def changeset(self) -> AbstractContextManager[Changeset]:
        """A block whose requests are one atomic group, which the server applies whole or not
        at all (a changeset; with ``format="json"``, an ``atomicityGroup``), as
        :meth:`Batching.changeset <flask_batch.client.Batching.changeset>`::

            with transport.batch(client) as batch:
                with batch.changeset() as transfer:
                    batch.post("/accounts/a/debits", json={"amount": 5})
                    batch.post("/accounts/b/credits", json={"amount": 5})
                batch.get("/accounts", depends_on=[transfer])

        Only batched requests can be members. If the block raises, its requests are taken
        back unsent.
        """
        return self._queue.changeset()

    def get(self, url: httpx.URL | str, **kwargs: Any) -> HttpxBatchResponse:
        return self.request("GET", url, **kwargs)

    def head(self, url: httpx.URL | str, **kwargs: Any) -> HttpxBatchResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: httpx.URL | str, **kwargs: Any) -> HttpxBatchResponse:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: httpx.URL | str, **kwargs: Any) -> HttpxBatchResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: httpx.URL | str, **kwargs: Any) -> HttpxBatchResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: httpx.URL | str, **kwargs: Any) -> HttpxBatchResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: httpx.URL | str, **kwargs: Any) -> HttpxBatchResponse:
        return self.request("DELETE", url, **kwargs)

    def send(self) -> SentBatch[HttpxBatchResponse]:
        """Send what is queued (batched, and the others one by one, in order); fill and
        return the responses. Raises :class:`HttpxBatchFailed` if any got no answer. The list
        returned, also kept as :attr:`last_batch` (there too when this raises), says what
        they came to: ``ok``, ``failed()``, ``retry_failed()`` (docs/clients/index.md, "What a
        batch came to")."""
        return self._sent(self._queue.take())

    def _sent(
        self, queue: list[tuple[Entry | None, HttpxBatchResponse]]
    ) -> SentBatch[HttpxBatchResponse]:
        """Send ``queue``: what :meth:`send` does once the requests are taken."""
        depends_on = depends_of(queue)
        results = self._send(queue)
        self.last_batch = SentBatch(
            [response for _, response in queue],
            attempts_of(queue, depends_on),
            self._transport.retry,
            functools.partial(self._resend, queue, depends_on),
            reported(results),
        )
        failures = unanswered(queue, results)
        if failures:
            error = failure(failures, len(queue), [r for _, r in queue])
            error.batch = self.last_batch
            raise error
        return self.last_batch

    def _resend(
        self,
        queue: list[tuple[Entry | None, HttpxBatchResponse]],
        depends_on: list[tuple[int, ...]],
        positions: list[int],
    ) -> list[int | None]:
        """Send the requests of ``queue`` at ``positions`` again (:meth:`SentBatch.retry_failed`);
        each one's new status (None: no answer)."""
        again = resent(queue, depends_on, positions)
        self._send(again)
        return [answered_status(response) for _, response in again]

    def _send(
        self, queue: list[tuple[Entry | None, HttpxBatchResponse]]
    ) -> list[Result[httpx.Response]]:
        """Send ``queue`` (``depends_on`` as positions in it); fill each answered response in
        place, and say why on the others. The results of the batched requests, in order."""
        entries = batched_entries(queue)
        try:
            results = self._transport.exchange(entries)
        except BaseException as error:
            unsent(queue, f"the batch could not be sent: {error}")
            raise
        filled(queue, results)
        # Then the requests that are not batched, one by one, in order.
        passing = [response for entry, response in queue if entry is None]
        for index, response in enumerate(passing):
            request = response._request
            assert request is not None
            try:
                started = time.perf_counter()
                fill(response, self._transport._passed_through(request))
                response.elapsed = timedelta(seconds=time.perf_counter() - started)
            except BaseException as error:
                unsent(
                    [(None, response) for response in passing[index:]],
                    f"the request could not be sent: {error}",
                )
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
        return results

    def __enter__(self) -> BatchScope:
        return self

    def __del__(self) -> None:
        self._queue.drop("a batch scope was garbage-collected before it was sent", 1)

    def _drop(self, what: str, stacklevel: int) -> None:
        """Drop the queued requests unsent, because of ``what``: their responses say why, a
        warning says so now (``stacklevel`` as in ``warnings.warn``)."""
        self._queue.drop(what, stacklevel + 1)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.send()
        else:
            self._queue.abandon("the batch was not sent: its `with` block raised")


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


#: Requests as a batch scope and ``send_all`` send them: each with its entry, if it is
#: batched (None: it passes through), and the response filled in place.
Sent = list[tuple[Entry | None, HttpxBatchResponse]]


def depends_of(queue: Sent) -> list[tuple[int, ...]]:
    """The positions in ``queue`` that each request depends on, before they are sent."""
    return [() if entry is None else entry.depends_on for entry, _ in queue]


def attempts_of(queue: Sent, depends_on: list[tuple[int, ...]]) -> list[Attempt]:
    """What each request of ``queue``, sent and filled, came to."""
    return [
        Attempt(response.request.method, depends_on[position], None, answered_status(response))
        if entry is None
        else Attempt(
            entry.sub_request.method,
            depends_on[position],
            entry.sub_request.group,
            answered_status(response),
            refers(entry.sub_request),
        )
        for position, (entry, response) in enumerate(queue)
    ]


def reported(results: list[Result[httpx.Response]]) -> int | None:
    """What the ``Batch-Failures`` headers of the answers ``results`` came in add up to."""
    return reported_failures([outer.headers.get(FAILURES_HEADER) for outer in outers_of(results)])


def unanswered(
    queue: Sent, results: list[Result[httpx.Response]]
) -> list[tuple[httpx.Request, Failed[httpx.Response]]]:
    """The batched requests of ``queue`` that got no answer, with why."""
    batched = (response for entry, response in queue if entry is not None)
    return [
        (response.request, result)
        for response, result in zip(batched, results, strict=True)
        if isinstance(result, Failed)
    ]


def batched_entries(queue: Sent) -> list[Entry]:
    """The entries of the batched requests of ``queue``, their ``depends_on`` turned from
    positions in the queue into positions among them."""
    entries = [entry for entry, _ in queue if entry is not None]
    renumber: dict[int, int] = {}
    for position, (entry, _) in enumerate(queue):
        if entry is not None:
            renumber[position] = len(renumber)
    for entry in entries:
        entry.depends_on = tuple(renumber[d] for d in entry.depends_on)
    return entries


def filled(queue: Sent, results: list[Result[httpx.Response]]) -> None:
    """Fill the responses of the batched requests of ``queue`` with their ``results``, or
    say why they got none."""
    batched = (response for entry, response in queue if entry is not None)
    for response, result in zip(batched, results, strict=True):
        if isinstance(result, Answered):
            fill(response, result)
        elif response._pending is not None:  # one sent again keeps its last answer
            response._pending = result.reason


def unsent(queue: Sent, reason: str) -> None:
    """The responses of ``queue`` got no answer, for ``reason``: one that had an answer
    (sent again by ``retry_failed()``) keeps it, as the last answer stands."""
    for _, response in queue:
        if response._pending is not None:
            response._pending = reason


def resent(queue: Sent, depends_on: list[tuple[int, ...]], positions: list[int]) -> Sent:
    """The requests of ``queue`` at ``positions``, to be sent again: with their dependencies
    among them."""
    place = {position: number for number, position in enumerate(positions)}
    again: Sent = []
    for position in positions:
        entry, response = queue[position]
        if entry is not None:
            kept = tuple(place[d] for d in depends_on[position] if d in place)
            entry = replace(entry, depends_on=kept)
        again.append((entry, response))
    return again


def answered_status(response: HttpxBatchResponse) -> int | None:
    """The status ``response`` was filled with, or None if it got no answer."""
    return None if response._pending is not None else response.status_code
