"""A ``requests.Session`` that queues its requests and sends them as one batch.

Every queued request gets a :class:`BatchResponse` at once: a real ``requests.Response``,
filled in place when the batch is sent (when the ``with`` block exits, or on
:meth:`Batching.send_batch`). Answers are matched to requests by Content-ID.
"""

from __future__ import annotations

import http.client
import io
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from requests.cookies import MockRequest, MockResponse
from requests.hooks import default_hooks, dispatch_hook
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPHeaderDict, HTTPResponse

from ..wire.batch import encode_requests, read_responses
from ..wire.errors import MalformedBatch
from ..wire.http1 import HOP_BY_HOP
from ..wire.jsonbatch import MEDIA_TYPE as JSON
from ..wire.jsonbatch import encode_json_requests, read_json_responses
from ..wire.model import Headers, SubRequest, SubResponse
from ..wire.multipart import new_boundary, parse_media_type

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


class BatchNotSent(RuntimeError):
    """A batched response was read before its batch was answered."""


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


class BatchResponse(requests.Response):
    """A ``requests.Response`` whose content arrives with its batch."""

    _pending: str | None = _NOT_SENT

    def __getattribute__(self, name: str) -> Any:
        if name in _GUARDED:
            pending = object.__getattribute__(self, "_pending")
            if pending is not None:
                raise BatchNotSent(pending)
        return super().__getattribute__(name)

    def __repr__(self) -> str:
        if self._pending is not None:
            return "<BatchResponse [pending]>"
        return f"<BatchResponse [{self.status_code}]>"


class Batching(requests.Session):
    """Queue requests, then send them to ``batch_url`` in one HTTP request.

    ::

        with Batching("http://localhost:5000/batch") as s:
            alice = s.patch("http://localhost:5000/people/alice/", json={"age": 31})
        alice.status_code, alice.json()   # filled in when the block exits

    Only requests to the batch URL's own origin can be batched. ``timeout`` applies to the
    batch request; sub-responses are not redirected (a 3xx is returned as it is).
    """

    def __init__(
        self,
        batch_url: str,
        *,
        format: Literal["multipart", "json"] = "multipart",
        timeout: float | tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if format not in ("multipart", "json"):
            raise ValueError(f"format must be 'multipart' or 'json', not {format!r}")
        self.batch_url = batch_url
        self.format = format
        self.timeout = timeout
        self._origin = _origin(batch_url)
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
        allow_redirects: bool = True,
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
        only if each of them succeeds (2xx), and answers it 424 otherwise. The transport
        arguments (timeout, proxies, verify, cert, stream, allow_redirects) belong to the
        batch request, which takes them from the session and the environment once per batch.
        """
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
        return self._enqueue(prepared, tuple(depends_on))

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Queue ``request``; its response is filled when the batch is sent."""
        return self._enqueue(request, ())

    def _enqueue(
        self, request: requests.PreparedRequest, dependencies: tuple[requests.Response, ...]
    ) -> BatchResponse:
        if request.url is None or _origin(request.url) != self._origin:
            raise ValueError(
                f"{request.url} cannot be batched: only requests to the batch endpoint's "
                f"origin {self.batch_url} can"
            )
        depends_on = []
        for dependency in dependencies:
            position = self._positions.get(id(dependency))
            if position is None or self._queue[position].response is not dependency:
                raise ValueError("depends_on must name responses queued earlier in this batch")
            depends_on.append(position)
        sub_request = _sub_request(request)
        if self.format == "json":
            encode_json_requests([sub_request])  # refuse now what the format cannot carry
        response = BatchResponse()
        response.request = request
        response.url = request.url
        self._positions[id(response)] = len(self._queue)
        self._queue.append(_Queued(request, response, sub_request, tuple(depends_on)))
        return response

    @property
    def pending(self) -> int:
        """How many requests wait for the next batch."""
        return len(self._queue)

    def send_batch(self) -> list[BatchResponse]:
        """Send the queued requests as one batch; fill and return their responses in order."""
        queue, self._queue = self._queue, []
        self._positions = {}
        if not queue:
            return []
        ids = _ids(len(queue), self.format)
        sub_requests = [
            replace(
                item.sub_request,
                content_id=ids[index],
                depends_on=tuple(ids[position] for position in item.depends_on),
            )
            for index, item in enumerate(queue)
        ]
        if self.format == "json":
            body, content_type = encode_json_requests(sub_requests), JSON
        else:
            boundary = new_boundary()
            body = encode_requests(sub_requests, boundary)
            content_type = f"multipart/mixed; boundary={boundary}"
        outer_request = self.prepare_request(
            requests.Request(
                "POST", self.batch_url, data=body, headers={"Content-Type": content_type}
            )
        )
        outer_request.hooks = default_hooks()  # session hooks see each sub-response, not the batch
        try:
            # Proxies and CA bundle from the environment, as Session.request would: once.
            settings = self.merge_environment_settings(outer_request.url, {}, None, None, None)
            outer = super().send(
                outer_request, timeout=self.timeout, allow_redirects=False, **settings
            )
        except requests.RequestException as error:
            self._fail(queue, f"the batch could not be sent: {error}")
            raise
        answers = self._read_answers(outer, queue)
        unanswered = []
        for item, answer in zip(queue, _match(sub_requests, answers), strict=True):
            if answer is None:
                item.response._pending = "the batch answer has no part for this request"
                unanswered.append(item.request)
            else:
                self._fill(item.response, item.request, answer, outer.elapsed)
        # Hooks run once every answer is in place, so a raising hook loses none of them.
        for item in queue:
            if item.response._pending is None:
                dispatch_hook("response", item.request.hooks, item.response)  # type: ignore[no-untyped-call]
        if unanswered:
            raise BatchFailed(
                f"the batch answer has no part for {len(unanswered)} of {len(queue)} requests",
                response=outer,
                requests=unanswered,
            )
        return [item.response for item in queue]

    def _read_answers(
        self, outer: requests.Response, queue: list[_Queued]
    ) -> list[tuple[str | None, SubResponse]]:
        problem = None
        expected = JSON if self.format == "json" else "multipart/mixed"
        if outer.status_code != 200:
            problem = (
                f"the batch failed with {outer.status_code} {outer.reason}: {outer.text[:500]}"
            )
        else:
            try:
                media_type, _ = parse_media_type(outer.headers.get("Content-Type", ""))
            except MalformedBatch:
                media_type = "unreadable"
            if media_type != expected:
                problem = f"the batch answer is {media_type or 'untyped'}, not {expected}"
        if problem is None:
            try:
                if self.format == "json":
                    return read_json_responses(outer.content)
                return read_responses(outer.headers.get("Content-Type"), outer.content)
            except MalformedBatch as error:
                problem = f"the batch answer is malformed: {error}"
        self._fail(queue, problem)
        raise BatchFailed(problem, response=outer, requests=[item.request for item in queue])

    def _fill(
        self,
        response: BatchResponse,
        request: requests.PreparedRequest,
        answer: SubResponse,
        elapsed: timedelta,
    ) -> None:
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


def _match(
    sent: list[SubRequest], answers: list[tuple[str | None, SubResponse]]
) -> list[SubResponse | None]:
    """The answer to each sent request: by Content-ID, or by position if the server echoes none."""
    by_id = {content_id: answer for content_id, answer in answers if content_id is not None}
    if not by_id and len(answers) == len(sent):
        return [answer for _, answer in answers]
    return [by_id.get(request.content_id or "") for request in sent]


def _header_dict(fields: Headers) -> HTTPHeaderDict:
    headers = HTTPHeaderDict()
    for name, value in fields:
        headers.add(name, value)
    return headers


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def _sub_request(request: requests.PreparedRequest) -> SubRequest:
    headers = tuple(
        (name, value)
        for name, value in _items(request.headers)
        if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"
    )
    return SubRequest(request.method or "GET", request.path_url, headers, _body_bytes(request.body))


def _ids(count: int, format: str) -> list[str]:
    """Ids for one batch: Content-IDs unique beyond it (multipart), short ones in JSON."""
    if format == "json":
        return [str(index) for index in range(1, count + 1)]
    prefix = uuid.uuid4().hex
    return [f"<{prefix}+{index}>" for index in range(count)]


@dataclass(frozen=True, slots=True)
class _Queued:
    """A request waiting for its batch, the response it was given, what it depends on."""

    request: requests.PreparedRequest
    response: BatchResponse
    sub_request: SubRequest
    #: Positions in the queue of the requests it depends on.
    depends_on: tuple[int, ...]


def _items(headers: Mapping[str, str | bytes]) -> list[tuple[str, str]]:
    return [
        (name, value.decode("latin-1") if isinstance(value, bytes) else value)
        for name, value in headers.items()
    ]


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
