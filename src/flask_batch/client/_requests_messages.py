"""What the ``requests`` front end adapts: its requests as parts, answers as its responses,
its timeouts and errors as the core's, and its kinds of :class:`~._core.report.BatchFailed`
and :class:`~._core.pending.BatchResponse`."""

from __future__ import annotations

import functools
import http.client
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import requests
from requests.cookies import MockRequest, MockResponse, RequestsCookieJar
from requests.exceptions import ChunkedEncodingError, ContentDecodingError
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

from ..wire.fields import number
from ..wire.model import Headers, SubRequest, SubResponse
from ._core.model import Arrival, Failed, Reply, smallest
from ._core.pending import BatchResponse
from ._core.queueing import NOT_CARRIED, Changeset
from ._core.report import BatchFailed, summary

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
#: The most a read of the batch answer asks for at once.
_PIECE = 64 * 1024
#: A pending response's ``elapsed``, as ``requests.Response()`` sets it (filling sets it again).
_NO_TIME = timedelta(0)
#: A (connect, read) timeout of requests, each in seconds or None.
Phases = tuple[float | None, float | None]


class RequestsBatchFailed(BatchFailed, requests.HTTPError):
    """:class:`~flask_batch.client.BatchFailed` as ``Batching`` raises it: a
    ``requests.HTTPError`` whose ``response`` is the batch's own response."""

    def __init__(
        self,
        message: str,
        *,
        response: requests.Response | None,
        requests: list[requests.PreparedRequest],
    ) -> None:
        super().__init__(message, response=response)
        self.requests = requests


class RequestsBatchResponse(BatchResponse, requests.Response):
    """A ``requests.Response`` whose content arrives with its batch.

    ``attempts``: how many batches it took to get this answer (1 unless it was retried).
    """

    _pending: str | None = _NOT_SENT
    _guarded = _GUARDED
    attempts: int = 0
    #: What ``raw`` is made of when first read (most answers are read whole at once, and
    #: their ``raw`` never is): the answer and its request, or None.
    _unread: tuple[SubResponse, requests.PreparedRequest] | None = None
    _raw: Any = None
    _cookies: RequestsCookieJar | None = None

    def __init__(self) -> None:
        """What ``requests.Response()`` sets, but the headers (filling sets them; until then
        reading them raises) and the cookie jar (made when first read: most answers set no
        cookie). ``Response()`` makes both, about 3 µs a queued call that filling throws
        away; ``tests/test_requests_equivalence.py`` checks nothing else is missing."""
        self._content = False  # type: ignore[assignment]  # requests' "not read yet"
        self._content_consumed = False
        self._next = None
        self.status_code = None  # type: ignore[assignment]  # as requests leaves it
        self.url = None  # type: ignore[assignment]
        self.encoding = None
        self.history = []
        self.reason = None  # type: ignore[assignment]
        self.elapsed = _NO_TIME
        self.request = None

    @property
    def cookies(self) -> RequestsCookieJar:
        """The cookies the answer set."""
        jar = self._cookies
        if jar is None:
            jar = self._cookies = RequestsCookieJar()
        return jar

    @cookies.setter
    def cookies(self, jar: RequestsCookieJar) -> None:
        self._cookies = jar

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled: a response is pickled only once filled (pickling reads its content)."""
        requests.Response.__setstate__(self, state)  # type: ignore[attr-defined]  # not in the stubs
        self._pending = None

    def __repr__(self) -> str:
        return self._pending_repr() or requests.Response.__repr__(self)

    @property
    def raw(self) -> Any:
        """The urllib3 response requests would have read the answer from."""
        if self._unread is not None:
            self._raw, self._unread = _raw(*self._unread), None
        return self._raw

    @raw.setter
    def raw(self, value: Any) -> None:
        self._raw, self._unread = value, None


@dataclass(frozen=True, slots=True)
class TransportArguments:
    """What a request's transport arguments (``timeout=``, ``stream=``) mean in a batch."""

    #: Its (connect, read) timeout: how long its batch may wait to connect, and for each read.
    phases: Phases
    #: Seconds the whole exchange of its batch may take.
    total: float | None
    #: Its body stays in ``raw`` until read (``stream=True``).
    stream: bool


class Queued(NamedTuple):
    """A request waiting for its batch: as prepared, as a part, and what it depends on."""

    request: requests.PreparedRequest
    sub_request: SubRequest
    #: Positions in the queue of the requests it depends on.
    depends_on: tuple[int, ...]
    arguments: TransportArguments
    #: The changeset it is a member of (None: none).
    group: Changeset | None = None

    @property
    def timeout(self) -> float | None:
        return self.arguments.total


def part_of(request: requests.PreparedRequest, target: str | None = None) -> SubRequest:
    """The part that carries a prepared request (to ``target``, if given: a reference)."""
    fields = ((name.lower(), (name, value)) for name, value in request.headers.items())
    return part(request.method or "GET", target or request.path_url, fields, request.body)


def part(
    method: str,
    target: str,
    fields: Iterable[tuple[str, tuple[str, str | bytes]]],
    body: Any,
) -> SubRequest:
    """The part that carries a request prepared as ``requests`` prepares it: its header
    fields (each by its name in lower case) but those of the batch's connection
    (:data:`~._core.queueing.NOT_CARRIED`), bytes values read as latin-1, and its body as
    requests leaves it (a str is sent in UTF-8)."""
    headers = tuple(
        (name, value if type(value) is str else value.decode("latin-1"))  # type: ignore[union-attr]
        for key, (name, value) in fields
        if key not in NOT_CARRIED
    )
    return SubRequest(method, target, headers, _body(body))


def _body(body: Any) -> bytes:
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


class _Filled(RequestsBatchResponse):
    """A :class:`RequestsBatchResponse` once filled (its class from then on), as the httpx
    clients' responses: nothing is guarded any more, so reading an attribute takes object's
    own path, not the guard's (a Python call on each read, by requests' code and the
    caller's alike: about 14 while a response is filled and read)."""

    __getattribute__ = object.__getattribute__


def forget_body(response: RequestsBatchResponse) -> None:
    """Forget the body ``response`` read of its last answer, so that filling it again (a
    request sent again) gives it the new answer's, as a fresh response would."""
    response._content = False  # type: ignore[assignment]  # requests' "not read yet"
    response._content_consumed = False


class Filling(NamedTuple):
    """What filling a pending response with ``answer`` sets in it (:func:`filling`)."""

    answer: SubResponse
    elapsed: timedelta
    #: The response's attributes, by name.
    attributes: dict[str, Any]
    #: Whether the answer sets cookies: the jars take them as the response is filled.
    sets_cookies: bool


def filling(queued: Queued, answer: SubResponse, elapsed: timedelta) -> Filling:
    """What :func:`fill` sets in the response to ``queued`` for ``answer``. It makes new
    objects and changes none, so it may be worked out ahead, in the thread that reads the
    batch answer while the rest of it arrives (``Batching._post``)."""
    request = queued.request
    stream = queued.arguments.stream
    fields = _joined(answer.headers)
    content_type = fields.get("content-type")
    attributes: dict[str, Any] = {
        "status_code": answer.status,
        "reason": answer.reason,
        "headers": CaseInsensitiveDict(fields.values()),
        "encoding": _encoding(None if content_type is None else content_type[1]),
        "elapsed": elapsed,
    }
    known, length = _known_length(fields, answer.status, request.method)
    if stream or not known:
        raw = _raw(answer, request)
        attributes["_raw"], attributes["_unread"] = raw, None
        length = raw.length_remaining
    else:
        attributes["_unread"] = (answer, request)  # ``raw`` is made when read, if ever
    if (
        answer.status  # requests leaves the content of a status 0 unset (None)
        and not stream  # streamed: read from raw, as plain requests would
        and "content-encoding" not in fields
        and length in (None, len(answer.body))
    ):
        # With no content coding to undo and the declared length met, reading ``raw`` would
        # return the body unchanged: it is the content, read now as Session.send reads a
        # response it does not stream, without that pass through urllib3. Otherwise
        # ``content`` reads ``raw``, and fails as plain requests would.
        attributes["_content"] = bytes(answer.body)  # read from the wire: bytes, not copied
        attributes["_content_consumed"] = True
    # A jar takes cookies only from these headers: without them, there is nothing to do.
    sets_cookies = "set-cookie" in fields or "set-cookie2" in fields
    return Filling(answer, elapsed, attributes, sets_cookies)


def fill(
    response: RequestsBatchResponse,
    queued: Queued,
    answer: SubResponse,
    *,
    elapsed: timedelta,
    session_cookies: RequestsCookieJar,
    ahead: Filling | None = None,
) -> None:
    """Make the pending ``response`` to ``queued`` the ``answer``, as ``requests`` would
    have built it (``HTTPAdapter.build_response``, then ``Session.send``'s read); ``ahead``:
    its :func:`filling`, if it was worked out ahead (used only if it is this answer's)."""
    if ahead is None or ahead.answer is not answer or ahead.elapsed != elapsed:
        ahead = filling(queued, answer, elapsed)
    response._pending = None
    response.__class__ = _Filled  # before filling it: no read goes through the guard
    response.__dict__.update(ahead.attributes)
    if ahead.sets_cookies:
        message = http.client.HTTPMessage()
        for name, value in answer.headers:
            message[name] = value
        request = queued.request
        for jar in (response.cookies, session_cookies):
            jar.extract_cookies(MockResponse(message), MockRequest(request))  # type: ignore[arg-type]


def _joined(fields: Headers) -> dict[str, tuple[str, str]]:
    """An answer's header fields as urllib3's ``HTTPHeaderDict`` gives them to requests: by
    name in lower case, the name as first written, the values of a repeated name joined."""
    joined: dict[str, tuple[str, str]] = {}
    for name, value in fields:
        key = name.lower()
        found = joined.get(key)
        joined[key] = (name, value) if found is None else (found[0], f"{found[1]}, {value}")
    return joined


def _known_length(
    fields: dict[str, tuple[str, str]], status: int, method: str | None
) -> tuple[bool, int | None]:
    """The length urllib3 would expect of an answer's body (None: until it ends), if its
    framing is plain enough to say it without urllib3: no transfer coding, and no length or
    one length in digits. ``(False, None)`` otherwise."""
    if "transfer-encoding" in fields:
        return False, None
    declared = fields.get("content-length")
    length = None if declared is None else number(declared[1])
    if declared is not None and length is None:
        return False, None
    if status in {204, 304} or 100 <= status < 200 or method == "HEAD":
        return True, 0
    return True, length


@functools.lru_cache(maxsize=64)
def _encoding(content_type: str | None) -> str | None:
    """The encoding requests takes from a Content-Type (a pure function of it)."""
    return get_encoding_from_headers({} if content_type is None else {"content-type": content_type})


def _raw(answer: SubResponse, request: requests.PreparedRequest) -> HTTPResponse:
    """The urllib3 response ``answer`` would have been, unread, as requests wraps it."""
    return HTTPResponse(
        body=io.BytesIO(answer.body),
        headers=_header_dict(answer.headers),
        status=answer.status,
        reason=answer.reason,
        preload_content=False,
        decode_content=False,
        request_method=request.method,
        request_url=request.url,
    )


def _header_dict(fields: Headers) -> HTTPHeaderDict:
    headers = HTTPHeaderDict()
    for name, value in fields:
        headers.add(name, value)
    return headers


def reply(
    response: requests.Response, body: bytes, arrival: Arrival | None = None
) -> Reply[requests.Response]:
    """What the batch endpoint answered, for the run (``arrival``: its body read as it
    arrived)."""
    return Reply(
        response.status_code,
        response.reason or "",
        response.headers.get("Content-Type"),
        response.headers.get("Retry-After"),
        body,
        response,
        response.headers.get("Accept-Encoding"),
        arrival,
    )


def timeout_of(timeout: object) -> tuple[Phases, float | None]:
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


def phases(queued: Iterable[Queued]) -> Phases:
    """The (connect, read) timeout of a batch: the smallest of its requests', phase by phase."""
    timeouts = [item.arguments.phases for item in queued]
    return smallest(t[0] for t in timeouts), smallest(t[1] for t in timeouts)


def pieces(raw: HTTPResponse) -> Iterator[bytes]:
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


def sent_nothing(error: requests.RequestException) -> bool:
    """Whether the batch request surely never reached the server (connection refused)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


def failure(failures: list[tuple[Queued, Failed[requests.Response]]], total: int) -> BaseException:
    """The exception that reports requests left without an answer.

    If each of them failed with a connection error or a timeout, that error (as plain
    ``requests`` would raise it); otherwise :class:`RequestsBatchFailed` naming them all.
    """
    errors = [failed.error for _, failed in failures]
    if all(error is not None for error in errors):
        error = errors[-1]
        assert error is not None
        return error
    said = summary([failed for _, failed in failures], total)
    report = RequestsBatchFailed(
        said.message, response=said.outer, requests=[item.request for item, _ in failures]
    )
    report.__cause__ = said.error
    return report
