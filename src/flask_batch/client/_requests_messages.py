"""What the ``requests`` front end adapts: its requests as parts, answers as its responses,
its timeouts and errors as the core's, and its kinds of :class:`~._core.report.BatchFailed`
and :class:`~._core.pending.BatchResponse`."""

from __future__ import annotations

import http.client
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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

from ..wire.model import Headers, SubRequest, SubResponse
from ._core.model import Failed, Reply, smallest
from ._core.pending import BatchResponse
from ._core.queueing import Changeset, sub_request
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

    def __repr__(self) -> str:
        return self._pending_repr() or requests.Response.__repr__(self)


@dataclass(frozen=True, slots=True)
class TransportArguments:
    """What a request's transport arguments (``timeout=``, ``stream=``) mean in a batch."""

    #: Its (connect, read) timeout: how long its batch may wait to connect, and for each read.
    phases: Phases
    #: Seconds the whole exchange of its batch may take.
    total: float | None
    #: Its body stays in ``raw`` until read (``stream=True``).
    stream: bool


@dataclass(frozen=True, slots=True)
class Queued:
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
    headers = (
        (name, value.decode("latin-1") if isinstance(value, bytes) else value)
        for name, value in request.headers.items()
    )
    method = request.method or "GET"
    return sub_request(method, target or request.path_url, headers, _body(request.body))


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


def unread(response: RequestsBatchResponse) -> None:
    """Forget the body ``response`` read of its last answer, so that filling it again (a
    request sent again) gives it the new answer's, as a fresh response would."""
    response._content = False  # type: ignore[assignment]  # requests' "not read yet"
    response._content_consumed = False  # type: ignore[attr-defined]  # not in the stubs


def fill(
    response: RequestsBatchResponse,
    queued: Queued,
    answer: SubResponse,
    *,
    elapsed: timedelta,
    session_cookies: RequestsCookieJar,
) -> None:
    """Make the pending ``response`` to ``queued`` the ``answer``, as ``requests`` would
    have built it."""
    request = queued.request
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
        and not queued.arguments.stream  # streamed: read from raw, as plain requests would
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
        for jar in (response.cookies, session_cookies):
            jar.extract_cookies(MockResponse(message), MockRequest(request))  # type: ignore[arg-type]


def _header_dict(fields: Headers) -> HTTPHeaderDict:
    headers = HTTPHeaderDict()
    for name, value in fields:
        headers.add(name, value)
    return headers


def reply(response: requests.Response, body: bytes) -> Reply[requests.Response]:
    """What the batch endpoint answered, for the run."""
    return Reply(
        response.status_code,
        response.reason or "",
        response.headers.get("Content-Type"),
        response.headers.get("Retry-After"),
        body,
        response,
        response.headers.get("Accept-Encoding"),
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
