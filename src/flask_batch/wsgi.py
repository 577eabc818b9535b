"""WSGI adapter: read a batch from an environ, run each part through a WSGI application.

Each part gets a fresh environ derived from the outer one (DESIGN.md section 3) and runs in an
empty :class:`contextvars.Context`, so no context-local state (Flask's ``g``, request, session,
current user) flows from the outer request into a part or from one part into the next.
"""

from __future__ import annotations

import contextvars
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes, urljoin, urlsplit

from .engine import Execution, Policy, stream_answers
from .options import resolve_options
from .wire.coding import BodyDecoder
from .wire.errors import (
    ALLOW,
    PROBLEM_JSON,
    BatchError,
    LengthRequired,
    LimitExceeded,
    MalformedBatch,
    MethodNotAllowed,
    problem_body,
    problem_response,
    reason_phrase,
)
from .wire.formats import JSON, MULTIPART, Writer, negotiate
from .wire.model import Limits, SubRequest, SubResponse
from .wire.plan import dependency_indices
from .wire.prefer import parse_preferences

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Set in every part's environ: a batch endpoint reached from a part refuses (no nesting).
PART_KEY = "flask_batch.part"
_CHUNK_SIZE = 64 * 1024
_DEFAULT_PORTS = {"http": "80", "https": "443"}
#: Outer keys every part shares; everything else (server objects, the outer request) stays out.
_SHARED_KEYS = (
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SCRIPT_NAME",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REMOTE_USER",
    "HTTPS",
    "wsgi.version",
    "wsgi.url_scheme",
    "wsgi.errors",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
)
_NOT_INHERITED = frozenset(
    {"HTTP_HOST", "HTTP_CONNECTION", "HTTP_KEEP_ALIVE", "HTTP_TRANSFER_ENCODING", "HTTP_TE"}
    | {"HTTP_UPGRADE", "HTTP_EXPECT", "HTTP_TRAILER"}
)
# Connection-level headers: a part's own are ignored. Host and the forwarding headers stay the
# batch request's, so a part cannot pose as another origin behind ProxyFix and the like.
_PART_HEADERS_IGNORED = frozenset(
    {"HOST", "CONTENT_LENGTH", "CONNECTION", "KEEP_ALIVE", "TE", "UPGRADE", "EXPECT", "TRAILER"}
    | {"FORWARDED", "X_REAL_IP"}
)
_ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


@dataclass(frozen=True, slots=True)
class Answer:
    """What a batch endpoint answers, for any WSGI front end to send."""

    status: str
    headers: list[tuple[str, str]]
    body: Iterable[bytes]


class BatchEndpoint:
    """A batch endpoint over one WSGI application: its limits, how parts run, its thread pool.

    The pool (``execution.max_workers`` threads) is created at the first parallel batch and
    shared by every batch of the endpoint; one batch uses at most
    ``execution.max_workers_per_request`` of its threads at once.
    """

    def __init__(
        self,
        app: WSGIApplication,
        limits: Limits | None = None,
        execution: Execution | None = None,
    ) -> None:
        self.app = app
        self.limits = limits or Limits()
        self.execution = execution or Execution()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def answer(self, environ: WSGIEnvironment) -> Answer:
        """Read the batch in ``environ`` and answer it, running each part through the app.

        The whole batch is read and checked before any part runs: a malformed or oversized
        batch changes nothing. The parts then run as the answer is streamed.
        """
        started = time.monotonic()
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS") and not environ.get(
            PART_KEY
        ):
            return self.describe()
        try:
            requests, writer = read_batch(environ, self.limits)
            dependencies = dependency_indices(requests)
        except BatchError as error:
            return error_answer(error)
        preferences = parse_preferences(environ.get("HTTP_PREFER"))
        workers = min(self.execution.workers_per_request, len(requests))
        policy = Policy(
            deadline=None if self.limits.deadline is None else started + self.limits.deadline,
            workers=workers,
            continue_on_error=preferences.continue_on_error,
        )
        headers = [("Content-Type", writer.content_type), ("Cache-Control", "no-store")]
        if preferences.applied is not None:
            headers.append(("Preference-Applied", preferences.applied))
        dispatcher = Dispatcher(self.app, environ, concurrent=workers > 1)
        pool = self.pool() if workers > 1 else None
        body = stream_answers(
            requests, dependencies, dispatcher, writer, policy=policy, executor=pool
        )
        return Answer("200 OK", headers, body)

    def describe(self) -> Answer:
        """What this endpoint accepts (GET, HEAD and OPTIONS), so clients can size batches."""
        document = {
            "formats": [MULTIPART, JSON],
            **{name: getattr(self.limits, name) for name in Limits.option_names()},
            "max_workers": self.execution.max_workers,
            "max_workers_per_request": self.execution.workers_per_request,
            "dependencies": True,
            "preferences": ["continue-on-error", "odata.continue-on-error"],
        }
        headers = [("Content-Type", "application/json"), ("Allow", ALLOW)]
        return Answer("200 OK", headers, [json.dumps(document).encode("ascii")])

    def pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.execution.max_workers, thread_name_prefix="flask-batch"
                )
            return self._pool


def error_answer(error: BatchError) -> Answer:
    """The problem+json answer that refuses a whole batch."""
    status = f"{error.status} {reason_phrase(error.status)}"
    headers = [("Content-Type", PROBLEM_JSON), *error.headers]
    return Answer(status, headers, [problem_body(error.problem())])


def read_batch(environ: WSGIEnvironment, limits: Limits) -> tuple[list[SubRequest], Writer]:
    """The sub-requests of the batch in ``environ`` and the writer of its answer.

    Raises :class:`BatchError` to refuse the batch.
    """
    if environ.get(PART_KEY):
        raise MalformedBatch("a batch cannot contain another batch")
    if environ.get("REQUEST_METHOD") != "POST":
        raise MethodNotAllowed("a batch is sent with POST (GET describes the endpoint)")
    reader, writer = negotiate(environ.get("CONTENT_TYPE"), limits)
    chunks = _input_chunks(environ, limits)
    encoding = environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
    if encoding != "identity":
        chunks = _decoded(chunks, BodyDecoder(encoding, limits.max_body_size))
    for chunk in chunks:
        reader.feed(chunk)
    return reader.close(), writer


def _decoded(chunks: Iterator[bytes], decoder: BodyDecoder) -> Iterator[bytes]:
    for chunk in chunks:
        yield decoder.feed(chunk)
    decoder.close()


def _input_chunks(environ: WSGIEnvironment, limits: Limits) -> Iterator[bytes]:
    stream = environ["wsgi.input"]
    length_text = environ.get("CONTENT_LENGTH") or ""
    if not length_text:
        if not environ.get("wsgi.input_terminated"):
            raise LengthRequired("a batch needs a Content-Length (or chunked transfer encoding)")
        while chunk := _read(stream, _CHUNK_SIZE):
            yield chunk
        return
    if not length_text.isdigit():
        raise MalformedBatch(f"invalid Content-Length {length_text!r}")
    remaining = length = int(length_text)
    if length > limits.max_body_size:
        raise LimitExceeded.of(
            limits,
            "max_body_size",
            f"the batch body ({length} bytes) is larger than {{value}} bytes",
        )
    while remaining:
        chunk = _read(stream, min(_CHUNK_SIZE, remaining))
        if not chunk:
            raise MalformedBatch(f"the body ended after {length - remaining} of {length} bytes")
        remaining -= len(chunk)
        yield chunk


def _read(stream: Any, size: int) -> bytes:
    """Read from ``wsgi.input``; a broken upload (bad chunked framing, a reset) is a 400."""
    try:
        chunk: bytes = stream.read(size)
    except (OSError, ValueError) as error:
        raise MalformedBatch(f"the body could not be read: {error}") from None
    return chunk


class Dispatcher:
    """Runs sub-requests of one batch through a WSGI application."""

    def __init__(
        self, app: WSGIApplication, outer: WSGIEnvironment, *, concurrent: bool = False
    ) -> None:
        self._app = app
        self._base = _base_environ(outer)
        if concurrent:
            self._base["wsgi.multithread"] = True  # parts of this batch run in threads
        self._scheme = outer.get("wsgi.url_scheme", "http")
        self._host = self._base["HTTP_HOST"]
        self._origin = (self._scheme.lower(), _normal_host(self._host, self._scheme))
        # Relative targets resolve against the batch URL (REQUEST_URI may lack SCRIPT_NAME).
        batch_path = outer.get("SCRIPT_NAME", "") + outer.get("PATH_INFO", "")
        self._batch_path = quote(batch_path.encode("latin-1"), safe="/:@!$&'()*+,;=")
        # Any spelling of this endpoint (/%62atch, /batch/) is refused; every other batch
        # endpoint refuses by the PART_KEY marker.
        self._batch_endpoint = batch_path.rstrip("/")

    def __call__(self, request: SubRequest) -> SubResponse:
        try:
            environ = self.environ(request)
        except _Refused as refusal:
            return problem_response(400, refusal.title, str(refusal))
        return contextvars.Context().run(call_app, self._app, environ)

    def environ(self, request: SubRequest) -> WSGIEnvironment:
        """The WSGI environ of ``request``, as a server would have built it."""
        raw_path, query = self._resolve(request.target)
        path = unquote_to_bytes(raw_path).decode("latin-1")
        if path.rstrip("/") == self._batch_endpoint:
            raise _Refused("Nested batch", "a batch cannot contain another batch")
        script_name: str = self._base.get("SCRIPT_NAME", "")
        if script_name:
            if path != script_name and not path.startswith(script_name + "/"):
                raise _Refused(
                    "Outside the application",
                    f"{raw_path} is outside this application's root {script_name}",
                )
            path = path[len(script_name) :]
        environ = self._base.copy()
        environ.update(
            {
                "REQUEST_METHOD": request.method,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_URI": f"{raw_path}?{query}" if query else raw_path,
                "wsgi.input": io.BytesIO(request.body),
            }
        )
        environ["RAW_URI"] = environ["REQUEST_URI"]
        _apply_part_headers(environ, request)
        return environ

    def _resolve(self, target: str) -> tuple[str, str]:
        """The raw (still percent-encoded) path and query string a request-target names."""
        if target.startswith("/"):
            path, _, query = target.partition("?")
            return path, query
        if _ABSOLUTE_FORM.match(target):
            try:
                url = urlsplit(target)
            except ValueError as error:  # a malformed authority, such as "http://[::1/x"
                raise _Refused("Invalid request target", f"{target}: {error}") from None
            origin = (url.scheme.lower(), _normal_host(url.netloc, url.scheme))
            if url.username is not None or origin != self._origin:
                raise _Refused(
                    "Cross-origin sub-request",
                    f"{url.scheme}://{url.netloc} is not this batch's origin "
                    f"{self._scheme}://{self._host}",
                )
            return url.path or "/", url.query
        if target == "*":
            raise _Refused(
                "Unsupported request target", "the asterisk-form target is not supported"
            )
        # Relative to the batch URL, as OData clients send them.
        url = urlsplit(urljoin(f"http://batch{self._batch_path}", target))
        return url.path, url.query


class _Refused(Exception):
    """A sub-request this batch will not run; it is answered 400 and the batch goes on."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title


def _normal_host(host: str, scheme: str) -> str:
    host = host.lower()
    default = _DEFAULT_PORTS.get(scheme.lower())
    if default and host.endswith(f":{default}"):
        host = host[: -len(default) - 1]
    return host


def _base_environ(outer: WSGIEnvironment) -> WSGIEnvironment:
    """What every part of the batch shares: server facts and the inherited headers."""
    base = {key: outer[key] for key in _SHARED_KEYS if key in outer}
    hop_by_hop = {
        "HTTP_" + name.strip().upper().replace("-", "_")
        for name in outer.get("HTTP_CONNECTION", "").split(",")
    }
    for key, value in outer.items():
        if (
            key.startswith("HTTP_")
            and not key.startswith(("HTTP_CONTENT_", "HTTP_PROXY_"))
            and key not in _NOT_INHERITED
            and key not in hop_by_hop
        ):
            base[key] = value
    host = outer.get("HTTP_HOST")
    if not host:
        host = outer.get("SERVER_NAME", "localhost")
        port = outer.get("SERVER_PORT", "")
        if port and port != _DEFAULT_PORTS.get(outer.get("wsgi.url_scheme", "http")):
            host = f"{host}:{port}"
    base["HTTP_HOST"] = host
    base["wsgi.input_terminated"] = True
    base[PART_KEY] = True
    return base


def _apply_part_headers(environ: WSGIEnvironment, request: SubRequest) -> None:
    """The part's own headers, each replacing the outer header of the same name."""
    seen: set[str] = set()
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        if "_" in name or key in _PART_HEADERS_IGNORED or key.startswith("X_FORWARDED_"):
            # An underscore would alias a dashed name (X_User vs X-User), as gunicorn notes.
            continue
        if key != "CONTENT_TYPE":
            key = "HTTP_" + key
        if key in seen:
            separator = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = f"{environ[key]}{separator}{value}"
        else:
            seen.add(key)
            environ[key] = value
    if request.body or any(name.lower() == "content-length" for name, _ in request.headers):
        environ["CONTENT_LENGTH"] = str(len(request.body))


def call_app(app: WSGIApplication, environ: WSGIEnvironment) -> SubResponse:
    """Run ``app`` on ``environ`` and collect its whole response."""
    started: list[Any] = []
    chunks: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and exc_info[1] is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return chunks.append

    iterable = app(environ, start_response)
    try:
        for chunk in iterable:
            if not isinstance(chunk, bytes):
                raise TypeError(f"the application yielded {type(chunk).__name__}, not bytes")
            chunks.append(chunk)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the application did not call start_response")
    status, headers = started
    code, _, reason = status.partition(" ")
    return SubResponse(int(code), reason, tuple(headers), b"".join(chunks))


class BatchMiddleware:
    """Serve batches at ``path`` in front of any WSGI application (Django, Falcon, Pyramid...).

    A request to ``path`` is a batch whose parts run through ``app``; every other request
    passes through untouched. ``options`` are those of
    :func:`~flask_batch.options.resolve_options`.
    """

    def __init__(self, app: WSGIApplication, path: str = "/batch", **options: Any) -> None:
        self.app = app
        self.path = path
        self.endpoint = BatchEndpoint(app, *resolve_options({}, options))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path:
            return self.app(environ, start_response)
        answer = self.endpoint.answer(environ)
        start_response(answer.status, answer.headers)
        return answer.body
