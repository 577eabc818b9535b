"""A ``requests.Session`` that queues its requests and sends them as one batch.

Every queued request gets a :class:`BatchResponse` at once: a real ``requests.Response``,
filled in place when the batch is sent (when the ``with`` block exits, or on
:meth:`Batching.send_batch`). Answers are matched to requests by Content-ID.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.cookies import MockRequest, MockResponse
from requests.exceptions import ChunkedEncodingError, ContentDecodingError
from requests.hooks import default_hooks, dispatch_hook
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPHeaderDict, HTTPResponse
from urllib3.exceptions import (
    DecodeError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError

from ..wire.http1 import HOP_BY_HOP
from ..wire.model import Headers, SubRequest, SubResponse
from ._core.formats import FormatName
from ._core.model import Answered, Failed, Lost, Reply, Send, smallest
from ._core.options import ClientOptions
from ._core.pending import Pending, drop_unsent
from ._core.policy import Retry
from ._drivers import drive, read_within, remaining

# What reading a response means; these raise BatchNotSent until the batch was answered.
_GUARDED = frozenset(
    {
        "status_code",
        "reason",
        "headers",
        "content",
        "text",
        "json",
        "raise_for_status",
        "ok",
        "encoding",
        "apparent_encoding",
        "cookies",
        "raw",
        "elapsed",
        "iter_content",
        "iter_lines",
        "links",
        "is_redirect",
        "is_permanent_redirect",
        "next",
        "history",
    }
)
_NOT_SENT = (
    "the batch has not been sent yet: leave the `with Batching(...)` block or call send_batch()"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The most a read of the batch answer asks for at once.
_PIECE = 64 * 1024
#: A (connect, read) timeout of requests, each in seconds or None.
Phases = tuple[float | None, float | None]


class BatchFailed(requests.HTTPError):
    """The batch itself failed; ``response`` is the outer response, ``requests`` those affected."""

    def __init__(
        self,
        message: str,
        *,
        response: requests.Response | None,
        requests: list[requests.PreparedRequest],
    ) -> None:
        super().__init__(message, response=response)
        self.requests = requests


class BatchResponse(Pending, requests.Response):
    """A ``requests.Response`` whose content arrives with its batch.

    ``attempts``: how many batches it took to get this answer (1 unless it was retried).
    """

    _pending: str | None = _NOT_SENT
    _guarded = _GUARDED
    attempts: int = 0

    def __repr__(self) -> str:
        return self._pending_repr() or requests.Response.__repr__(self)


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
    - ``discover``: ask the endpoint for its limits (``GET`` on the batch URL, once per
      session) before a queue would be split. ``split=False``: one batch, whatever its size.
    - ``concurrency``: batches of one queue in flight at once (1: one after another).
    - ``sleep``: how to wait before a retry (``time.sleep``; tests pass a fake).
    """

    def __init__(
        self,
        batch_url: str,
        *,
        format: FormatName = "multipart",
        timeout: float | tuple[float, float] | None = None,
        retries: int | Retry = 2,
        max_parts: int | None = None,
        max_body_size: int | None = None,
        discover: bool = True,
        split: bool = True,
        concurrency: int = 1,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        super().__init__()
        self._configure(
            format=format,
            retries=retries,
            max_parts=max_parts,
            max_body_size=max_body_size,
            discover=discover,
            split=split,
            concurrency=concurrency,
        )
        _timeout_of(timeout)  # refuse now what could not bound a batch
        self.batch_url = batch_url
        self.timeout = timeout
        self._sleep = sleep
        self._origin = _origin(batch_url)
        parts = urlsplit(batch_url)
        #: A URL that starts with this has the batch URL's origin: no need to parse it.
        self._origin_prefix = f"{parts.scheme}://{parts.netloc}/"
        self._queue: list[_Queued] = []
        self._positions: dict[int, int] = {}  # id() of a queued response -> its position

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
        depends_on: Iterable[requests.Response] = (),
    ) -> requests.Response:
        """Queue a request, as ``requests.Session.request`` would send it.

        ``depends_on``: responses queued earlier in this batch; the server runs this request
        only if each of them succeeds (2xx), and answers it 424 otherwise. ``timeout`` bounds
        the batch the request goes in; ``stream=True`` leaves the body in ``raw`` to be read
        (it arrived whole, with the batch); ``hooks`` run on the filled response. The
        arguments that only a connection of its own could honour raise ``ValueError``:
        ``allow_redirects=True``, and ``proxies``, ``verify`` or ``cert`` other than the
        session's (the batch request takes those from the session and the environment).
        """
        options = self._options(
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            stream=stream,
            verify=verify,
            cert=cert,
        )
        if isinstance(method, bytes):
            method = method.decode("ascii")
        prepared = self.prepare_request(
            requests.Request(
                method=method.upper(),
                url=url,
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
        return self._enqueue(prepared, tuple(depends_on), options)

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        # requests.Session.get would pass allow_redirects=True, which a batch cannot honour.
        return self.request("GET", url, **kwargs)

    def options(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        return self.request("OPTIONS", url, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Queue ``request``; its response is filled when the batch is sent. The keyword
        arguments are the transport arguments of :meth:`request` (``timeout``, ``stream``,
        ``allow_redirects``, ``proxies``, ``verify``, ``cert``), honoured or refused alike."""
        return self._enqueue(request, (), self._options(**kwargs))

    def _options(
        self,
        *,
        timeout: Any = None,
        allow_redirects: bool | None = None,
        proxies: Any = None,
        stream: bool | None = None,
        verify: Any = None,
        cert: Any = None,
    ) -> _Options:
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
        phases, total = _timeout_of(self.timeout if timeout is None else timeout)
        return _Options(phases, total, self.stream if stream is None else bool(stream))

    def _enqueue(
        self,
        request: requests.PreparedRequest,
        dependencies: tuple[requests.Response, ...],
        options: _Options,
    ) -> BatchResponse:
        url = request.url
        if url is None or not (url.startswith(self._origin_prefix) or _origin(url) == self._origin):
            raise ValueError(
                f"{url} cannot be batched: only requests to the batch endpoint's "
                f"origin {self.batch_url} can"
            )
        depends_on = []
        for dependency in dependencies:
            position = self._positions.get(id(dependency))
            if position is None or self._queue[position].response is not dependency:
                raise ValueError("depends_on must name responses queued earlier in this batch")
            depends_on.append(position)
        sub_request = _sub_request(request)
        self._format.check(sub_request)  # refuse now what the format cannot carry
        response = BatchResponse()
        response.request = request
        response.url = url
        self._positions[id(response)] = len(self._queue)
        self._queue.append(_Queued(request, response, sub_request, tuple(depends_on), options))
        return response

    @property
    def pending(self) -> int:
        """How many requests wait for the next batch."""
        return len(self._queue)

    def send_batch(self) -> list[BatchResponse]:
        """Send the queued requests; fill and return their responses in order.

        They go as one batch, or as several if they exceed the endpoint's limits; parts
        answered 429 or 503 (and batches lost as a whole) are retried as ``retries`` says.
        """
        queue, self._queue = self._queue, []
        self._positions = {}
        if not queue:
            return []
        run = self._run(queue)
        try:
            drive(
                run,
                functools.partial(self._post, queue),
                discover=functools.partial(self._discover, queue),
                sleep=self._sleep,
                concurrency=self.concurrency,
                timed_out=requests.Timeout,
            )
        except BaseException as error:
            self._fail(queue, f"the batch could not be sent: {error}")
            raise
        failures: list[tuple[_Queued, Failed[requests.Response]]] = []
        for item, result in zip(queue, run.results(), strict=True):
            if isinstance(result, Answered):
                outer = result.outer
                elapsed = outer.elapsed if outer is not None else timedelta(0)
                self._fill(item, result.response, elapsed)
            else:
                item.response._pending = result.reason
                failures.append((item, result))
            item.response.attempts = result.attempts
        # Hooks run once every answer is in place, so a raising hook loses none of them.
        for item in queue:
            if item.response._pending is None:
                dispatch_hook("response", item.request.hooks, item.response)  # type: ignore[no-untyped-call]
        if failures:
            raise _failure(failures, len(queue))
        return [item.response for item in queue]

    def _post(
        self, queue: list[_Queued], send: Send, deadline: float | None
    ) -> Reply[requests.Response] | Lost:
        """POST one batch; a lost connection or a timeout is an outcome, not an exception."""
        outer_request = self.prepare_request(
            requests.Request(
                "POST", self.batch_url, data=send.body, headers={"Content-Type": send.content_type}
            )
        )
        outer_request.hooks = default_hooks()  # session hooks see each sub-response, not the batch
        phases = _phases([queue[index] for index in send.items])
        try:
            outer, body = self._exchange(outer_request, phases, deadline)
        except (requests.ConnectionError, requests.Timeout, ChunkedEncodingError) as error:
            return Lost(error, sent_nothing=_sent_nothing(error))
        return Reply(
            outer.status_code,
            outer.reason or "",
            outer.headers.get("Content-Type"),
            outer.headers.get("Retry-After"),
            body,
            outer,
        )

    def _discover(self, queue: list[_Queued], deadline: float | None) -> object:
        """The endpoint's description (GET on the batch URL), or None if that fails."""
        request = self.prepare_request(
            requests.Request("GET", self.batch_url, headers={"Accept": "application/json"})
        )
        request.hooks = default_hooks()
        try:
            response, body = self._exchange(request, _phases(queue), deadline)
            return json.loads(body) if response.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def _exchange(
        self, request: requests.PreparedRequest, phases: Phases, deadline: float | None
    ) -> tuple[requests.Response, bytes]:
        """Send a request of the session's own (the batch, a discovery) and read its whole
        answer by ``deadline``: each wait is bounded by the time left, and the answer is read
        in pieces with the deadline checked after each (``Overdue`` once it passed)."""
        left = remaining(deadline)
        timeout = (smallest([phases[0], left]), smallest([phases[1], left]))
        # Proxies and CA bundle from the environment, as Session.request would: once.
        settings = self.merge_environment_settings(request.url, {}, True, None, None)
        response = requests.Session.send(
            self, request, timeout=timeout, allow_redirects=False, **settings
        )
        try:
            if isinstance(response._content, bytes) or not hasattr(response.raw, "read1"):
                # Read already (an adapter that does not stream), or not urllib3's: as it comes.
                return response, response.content
            body = read_within(_pieces(response.raw), deadline)
        finally:
            response.close()  # the connection goes back to the pool only if read to its end
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]  # not in the stubs
        return response, body

    def _fill(self, item: _Queued, answer: SubResponse, elapsed: timedelta) -> None:
        response, request = item.response, item.request
        raw = HTTPResponse(
            body=io.BytesIO(answer.body),
            headers=_header_dict(answer.headers),
            status=answer.status,
            reason=answer.reason,
            preload_content=False,
            decode_content=False,
            request_method=request.method,
            request_url=request.url,
        )
        # What requests.adapters.HTTPAdapter.build_response does, on the response handed out.
        response._pending = None
        response.status_code = answer.status
        response.reason = answer.reason
        response.headers = CaseInsensitiveDict(raw.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = raw
        response.elapsed = elapsed
        if (
            answer.status  # requests leaves the content of a status 0 unset (None)
            and not item.options.stream  # streamed: read from raw, as plain requests would
            and "content-encoding" not in raw.headers
            and raw.length_remaining in (None, len(answer.body))
        ):
            # With no content coding to undo and the declared length met, reading ``raw`` would
            # return the body unchanged: it is the content, read now as Session.send reads a
            # response it does not stream, without that pass through urllib3. Otherwise
            # ``content`` reads ``raw``, and fails as plain requests would.
            response._content = bytes(answer.body)  # read from the wire: bytes, not copied
            response._content_consumed = True  # type: ignore[attr-defined]  # not in the stubs
        # A jar takes cookies only from these headers: without them, there is nothing to do.
        if "set-cookie" in raw.headers or "set-cookie2" in raw.headers:
            message = http.client.HTTPMessage()
            for name, value in answer.headers:
                message[name] = value
            for jar in (response.cookies, self.cookies):
                jar.extract_cookies(MockResponse(message), MockRequest(request))  # type: ignore[arg-type]

    @staticmethod
    def _fail(queue: Iterable[_Queued], reason: str) -> None:
        for item in queue:
            item.response._pending = reason

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.send_batch()
            else:
                self._fail(self._queue, "the batch was not sent: its `with` block raised")
                self._queue = []
        finally:
            self.close()

    def close(self) -> None:
        """Close the connections. Requests still queued are never sent: each of their
        responses raises :class:`BatchNotSent` when read, and an
        :class:`~flask_batch.client.UnsentRequestsWarning` says so now."""
        self._drop_queue("the Batching session was closed before send_batch()", stacklevel=3)
        super().close()

    def __del__(self) -> None:
        self._drop_queue("the Batching session was garbage-collected before send_batch()", 2)

    def _drop_queue(self, what: str, stacklevel: int) -> None:
        queue = getattr(self, "_queue", None)  # None if __init__ failed
        if queue:
            self._queue, self._positions = [], {}
            unsent = [(i.response, i.request.method or "", i.request.url or "") for i in queue]
            drop_unsent(what, unsent, stacklevel)


def _header_dict(fields: Headers) -> HTTPHeaderDict:
    headers = HTTPHeaderDict()
    for name, value in fields:
        headers.add(name, value)
    return headers


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


#: Request headers a part does not carry: they describe the batch request's connection (the
#: server takes every part's Host from the batch request, docs/design.md section 3).
_NOT_CARRIED = HOP_BY_HOP | {"content-length", "host"}


def _sub_request(request: requests.PreparedRequest) -> SubRequest:
    headers = tuple(
        (name, value.decode("latin-1") if isinstance(value, bytes) else value)
        for name, value in request.headers.items()
        if name.lower() not in _NOT_CARRIED
    )
    return SubRequest(request.method or "GET", request.path_url, headers, _body_bytes(request.body))


@dataclass(frozen=True, slots=True)
class _Options:
    """What a request's transport arguments mean in a batch."""

    #: Its (connect, read) timeout: how long its batch may wait to connect, and for each read.
    timeout: Phases
    #: Seconds the whole exchange of its batch may take.
    total: float | None
    #: Its body stays in ``raw`` until read (``stream=True``).
    stream: bool


@dataclass(frozen=True, slots=True)
class _Queued:
    """A request waiting for its batch, the response it was given, what it depends on."""

    request: requests.PreparedRequest
    response: BatchResponse
    sub_request: SubRequest
    #: Positions in the queue of the requests it depends on.
    depends_on: tuple[int, ...]
    options: _Options

    @property
    def timeout(self) -> float | None:
        return self.options.total


def _timeout_of(timeout: object) -> tuple[Phases, float | None]:
    """A requests timeout as a (connect, read) pair and the seconds a whole exchange may take:
    ``t`` seconds is ``(t, t)`` and ``t`` in all, a pair ``(c, r)`` is ``c + r`` in all, None
    is no bound; ``ValueError`` for anything that could not bound a batch."""
    if isinstance(timeout, tuple) and len(timeout) == 2:
        connect, read = _seconds(timeout[0], timeout), _seconds(timeout[1], timeout)
        return (connect, read), None if connect is None or read is None else connect + read
    seconds = _seconds(timeout, timeout)
    return (seconds, seconds), seconds


def _seconds(value: object, timeout: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value > 0
        and math.isfinite(value)
    ):
        return float(value)
    raise ValueError(
        "timeout must be a number of seconds > 0, a (connect, read) pair of them, or None; "
        f"not {timeout!r}"
    )


def _phases(items: Iterable[_Queued]) -> Phases:
    """The (connect, read) timeout of a batch: the smallest of its requests', phase by phase."""
    timeouts = [item.options.timeout for item in items]
    return smallest(t[0] for t in timeouts), smallest(t[1] for t in timeouts)


def _pieces(raw: HTTPResponse) -> Iterator[bytes]:
    """An answer's body as it arrives (decoded as requests decodes it), with urllib3's errors
    raised as requests raises them."""
    try:
        while piece := raw.read1(_PIECE, decode_content=True):
            yield piece
    except ReadTimeoutError as error:
        raise requests.ReadTimeout(error) from error
    except Urllib3SSLError as error:
        raise requests.exceptions.SSLError(error) from error
    except ProtocolError as error:
        raise ChunkedEncodingError(error) from error
    except DecodeError as error:
        raise ContentDecodingError(error) from error


def _body_bytes(body: Any) -> bytes:
    """A prepared body as bytes: requests leaves str, bytes, files and iterables as given."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(chunk.encode("utf-8") if isinstance(chunk, str) else chunk for chunk in body)


_NO_PART = "the batch answer has no part for this request"


def _failure(
    failures: list[tuple[_Queued, Failed[requests.Response]]], total: int
) -> BaseException:
    """The exception that reports requests left without an answer.

    If each of them failed with a connection error or a timeout, that error (as plain
    ``requests`` would raise it); otherwise :class:`BatchFailed` naming them all.
    """
    errors = [failure.error for _, failure in failures]
    if all(error is not None for error in errors):
        error = errors[-1]
        assert error is not None
        return error
    reasons = {failure.reason for _, failure in failures}
    first = failures[0][1]
    count = len(failures)
    if reasons == {_NO_PART}:
        message = f"the batch answer has no part for {count} of {total} requests"
    elif len(reasons) == 1:
        message = first.reason if count == total else f"{first.reason} ({count} of {total})"
    else:
        message = f"{count} of {total} requests failed; the first: {first.reason}"
    outer = next((f.outer for _, f in failures if f.outer is not None), None)
    failed = BatchFailed(message, response=outer, requests=[item.request for item, _ in failures])
    failed.__cause__ = next((f.error for _, f in failures if f.error is not None), None)
    return failed


def _sent_nothing(error: requests.RequestException) -> bool:
    """Whether the batch request surely never reached the server (connection refused)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)
