"""What every batch endpoint does, whatever the framework, without I/O.

An adapter (WSGI, ASGI) moves bytes; this module decides: the checks on the batch request's
method and headers, the body read chunk by chunk under the limits (:class:`Intake`), the
problem document refusing a batch, the endpoint's description, and how a batch will run
(:func:`plan_run`); and which requests at its path a route takes (:class:`Routing`). So every
adapter refuses and answers exactly alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from urllib.parse import parse_qsl

from .conventions import (
    Conventions,
    Versions,
    answer_status,
    json_dialect,
    odata_version,
    speaks_odata,
)
from .execution import Execution
from .observe import Observer, Tally, observe
from .references import Resolver
from .schedule import Policy
from .targets import Router
from .wire.content_coding import REQUEST_CODINGS, BodyDecoder, accepts_gzip
from .wire.dependencies import dependency_indices
from .wire.errors import (
    ALLOW,
    PROBLEM_JSON,
    AtomicityUnavailable,
    BatchError,
    LengthRequired,
    LimitExceeded,
    MalformedBatch,
    MethodNotAllowed,
    RequestTimeout,
    problem_body,
    reason_phrase,
)
from .wire.fields import number
from .wire.formats import JSON, MULTIPART, Reader, Writer, negotiate
from .wire.model import Limits, SubRequest, option
from .wire.multipart_requests import body_location
from .wire.prefer import parse_preferences
from .wire.references import Reference, plan_references

__all__ = [
    "DESCRIBE_METHODS",
    "Answer",
    "Intake",
    "Routing",
    "RunPlan",
    "declared_length",
    "describe",
    "error_answer",
    "plan_run",
    "whole_answer",
]

#: Methods that describe the endpoint instead of sending a batch.
DESCRIBE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Routing:
    """Which requests at a route's path are the route's: on a path of its own, every one (a
    batch, a description, or a 405); on a path it shares with the application's own views
    (Azure's blob batch posts to the container's path), only its batches."""

    shared_path: bool = option(
        False,
        "the route shares its path with the application's own views: only a POST there is a "
        "batch (with batch_query, one carrying it), and every other request reaches the "
        "application (so GET does not describe the route)",
    )
    batch_query: str | None = option(
        None,
        'query parameters a POST must carry to be a batch, on a shared path: "comp=batch" '
        "(each name=value must be there, in any order, among others)",
    )

    def __post_init__(self) -> None:
        if type(self.shared_path) is not bool:
            raise ValueError(f"shared_path must be True or False, not {self.shared_path!r}")
        if self.batch_query is None:
            return
        if not self.shared_path:
            raise ValueError(
                "batch_query needs shared_path=True: a route on a path of its own takes every "
                "request there, whatever its query"
            )
        if not isinstance(self.batch_query, str):
            raise ValueError(f"batch_query must be a query string, not {self.batch_query!r}")
        _query_fields(self.batch_query)  # refuses one that is not a query

    def takes(self, method: str, query: str) -> bool:
        """Whether a request at the route's path (``query``: its query string, without
        ``?``) is the route's; any other one is the application's."""
        if not self.shared_path:
            return True
        if method != "POST":
            return False
        if self.batch_query is None:
            return True
        return _query_fields(self.batch_query) <= set(parse_qsl(query, keep_blank_values=True))


@cache
def _query_fields(query: str) -> frozenset[tuple[str, str]]:
    """The name=value fields of ``batch_query``, each percent-decoded (as a request's are
    when they are compared); refuses an empty or malformed one."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        pairs = []
    if not pairs or query.startswith("?") or any(not name for name, _ in pairs):
        raise ValueError(
            f"batch_query must be name=value fields joined by &, such as 'comp=batch' (no '?'), "
            f"not {query!r}"
        )
    return frozenset(pairs)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a batch endpoint answers, for any front end to send."""

    status: str
    headers: list[tuple[str, str]]
    body: Iterable[bytes]
    #: A streamed answer's tally: its head, sent with the first chunk, adds the tally's
    #: header fields then (None: the answer is known in full).
    tally: Tally | None = None

    @property
    def status_code(self) -> int:
        return int(self.status.partition(" ")[0])


def error_answer(error: BatchError) -> Answer:
    """The problem+json answer that refuses a whole batch."""
    status = f"{error.status} {reason_phrase(error.status)}"
    return whole_answer(
        status, [("Content-Type", PROBLEM_JSON), *error.headers], problem_body(error.problem())
    )


def whole_answer(status: str, headers: list[tuple[str, str]], body: bytes) -> Answer:
    """An answer known in full, with its Content-Length (so it is not sent chunked, and a
    HEAD answer says how long the GET one is), on every front end alike."""
    return Answer(status, [*headers, ("Content-Length", str(len(body)))], [body])


def describe(limits: Limits, execution: Execution, conventions: Conventions) -> Answer:
    """What an endpoint accepts (GET, HEAD and OPTIONS), so clients can size batches and
    know how their groups will run and be answered."""
    groups = "atomic" if execution.transaction is not None else "refused"
    document = {
        "formats": [MULTIPART, JSON],
        **{field.name: getattr(limits, field.name) for field in fields(Limits)},
        "max_workers": execution.max_workers,
        "max_workers_per_request": execution.workers_per_request,
        "dependencies": True,
        "references": True,
        "preferences": ["continue-on-error", "odata.continue-on-error"],
        "groups": "in-order" if execution.non_atomic_groups else groups,
        "multipart_dialect": conventions.multipart_dialect,
        "flat_changesets": conventions.flat_changesets,
        "answer_status": conventions.answer_status,
        "content_codings": REQUEST_CODINGS.split(", "),
        "compress_answers": conventions.compress_answers,
    }
    headers = [
        ("Content-Type", "application/json"),
        ("Allow", ALLOW),
        ("Accept-Encoding", REQUEST_CODINGS),
    ]
    return whole_answer("200 OK", headers, json.dumps(document).encode("ascii"))


def declared_length(content_length: str | None, limits: Limits) -> int | None:
    """The body length a ``Content-Length`` declares (None: none declared).

    A length over ``max_body_size`` is refused before a byte of the body is read.
    """
    if not content_length:
        return None
    length = number(content_length)
    if length is None:
        raise MalformedBatch(f"invalid Content-Length {content_length[:40]!r}")
    if length > limits.max_body_size:
        raise LimitExceeded.of(
            limits,
            "max_body_size",
            f"the batch body ({length} bytes) is larger than {{value}} bytes",
        )
    return length


class Intake:
    """One batch request read push-style: the head is checked at once, the body chunk by chunk.

    Every batch-level decision is made here, for every adapter alike: the method, nesting, the
    media type, the framing (a ``Content-Length`` within ``max_body_size``, or a body the
    transport ends: chunked, or HTTP/2), the content coding (and the answer's: gzip when
    ``accept_encoding`` prefers it), the limits while the body streams
    in, a body that ends early, and the deadline while it is still arriving. Raises
    :class:`BatchError` (from the constructor, :meth:`feed`, :meth:`check_time` or
    :meth:`close`) to refuse the batch, as soon as what arrived allows.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        method: str | None,
        content_type: str | None,
        content_length: str | None = None,
        framed: bool = False,
        content_encoding: str | None = None,
        accept_encoding: str | None = None,
        nested: bool = False,
        started: float | None = None,
        conventions: Conventions = Conventions(),  # noqa: B008 (frozen: nothing is shared)
        versions: Versions = Versions(),  # noqa: B008
    ) -> None:
        if nested:
            raise MalformedBatch("a batch cannot contain another batch")
        if method != "POST":
            raise MethodNotAllowed("a batch is sent with POST (GET describes the endpoint)")
        odata = speaks_odata(conventions, versions)
        reader, writer = negotiate(
            content_type,
            limits,
            json_dialect=json_dialect(conventions, versions),
            flat_changesets=conventions.flat_changesets,
            odata=odata,
        )
        #: Whether the batch speaks OData's multipart dialect (docs/dialects.md).
        self.odata = odata and writer.content_type.startswith(MULTIPART)
        #: The status of the batch's answer, and its own headers (docs/dialects.md).
        self.status = answer_status(conventions, versions)
        version = odata_version(versions)
        self.headers = [] if version is None else [("OData-Version", version)]
        # The codings a batch body may come in (RFC 9110, 12.5.3), for clients to compress.
        self.headers.append(("Accept-Encoding", REQUEST_CODINGS))
        #: Whether the answer goes in gzip: the route compresses, and the request takes it.
        self.gzip = conventions.compress_answers and accepts_gzip(accept_encoding)
        if conventions.compress_answers:
            self.headers.append(("Vary", "Accept-Encoding"))
        if self.gzip:
            self.headers.append(("Content-Encoding", "gzip"))
        #: The length the request declared, or None when the transport frames the body.
        self.length = declared_length(content_length, limits)
        if self.length is None and not framed:
            raise LengthRequired("a batch needs a Content-Length (or chunked transfer encoding)")
        self._reader: Reader = reader
        #: The writer of the answer, in the format the batch came in.
        self.writer: Writer = writer
        encoding = (content_encoding or "identity").strip().lower()
        self._decoder = (
            None if encoding == "identity" else BodyDecoder(encoding, limits.max_body_size)
        )
        self._received = 0
        #: Whether the body may hold a reference (``$<id>``): a ``$``, or a ``\`` (in JSON,
        #: ``\u0024``), came in it. Most batches have neither, and are not looked at again.
        self.may_refer = False
        #: The :func:`time.monotonic` instant by which the body must have arrived, or None.
        self.deadline = (
            None if limits.deadline is None or started is None else started + limits.deadline
        )

    def seconds_left(self) -> float | None:
        """Seconds until the deadline (None: no deadline); :meth:`check_time` refuses at 0."""
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.0)

    def check_time(self) -> None:
        """Refuse the batch (408) once its deadline has passed while the body is arriving."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise RequestTimeout(
                f"the batch's deadline passed after {self._received} bytes of its body"
                + ("" if self.length is None else f" (of {self.length})")
            )

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the body, as they arrived (compressed, if they were)."""
        self._received += len(chunk)
        if self._decoder is not None:
            chunk = self._decoder.feed(chunk)
        if not self.may_refer:  # (find: a memchr; "in" takes the slower path of any buffer)
            self.may_refer = chunk.find(b"$") >= 0 or chunk.find(b"\\") >= 0
        self._reader.feed(chunk)

    def close(self) -> list[SubRequest]:
        """The body ended: its sub-requests, in order."""
        if self.length is not None and self._received < self.length:
            raise MalformedBatch(f"the body ended after {self._received} of {self.length} bytes")
        if self._decoder is not None:
            self._decoder.close()
        return self._reader.close()


def _refuse_groups(requests: Sequence[SubRequest]) -> None:
    """Refuse a batch holding an atomic group on a route that cannot make it atomic (no
    transaction hook) and was not told to run groups without atomicity."""
    for request in requests:
        if request.group is not None:
            raise AtomicityUnavailable(
                f"the batch holds the atomic group {request.group.name!r}, which this route "
                "cannot make all or nothing: it has no transaction hook. The application sets "
                "one with the route's transaction option (or non_atomic_groups=True to run "
                "groups in order without atomicity)",
                part=request.group.first + 1,
            )


@dataclass(frozen=True, slots=True)
class RunPlan:
    """How a batch that was read will run, and the headers of its answer."""

    #: What each request waits for: its dependencies, and the requests it refers to.
    dependencies: list[tuple[int, ...]]
    policy: Policy
    headers: list[tuple[str, str]]
    requests: Sequence[SubRequest] = ()
    #: Each request's references (``$<id>``), checked; None: the batch has none.
    references: list[tuple[Reference, ...]] | None = None
    #: Who logs and signals each part and the batch (None: nobody listens).
    observer: Observer | None = None
    #: How the answer goes: counted as its parts are written.
    tally: Tally = field(default_factory=Tally)

    def resolver(self, router: Router) -> Resolver | None:
        """What resolves the references of the batch's requests as each starts, on the
        batch's origin (``router``); None: it has none."""
        if self.references is None:
            return None
        return Resolver(self.requests, self.references, router)


def plan_run(
    requests: Sequence[SubRequest],
    intake: Intake,
    *,
    limits: Limits,
    execution: Execution,
    prefer: str | None,
    started: float,
    request_id: str | None = None,
) -> RunPlan:
    """Dependencies and references (refused with :class:`BatchError`), the error policy
    the ``Prefer`` header asks for (and the dialect's default: an OData multipart batch stops
    at its first error, and its answer ends there), the deadline counted from ``started``
    (:func:`time.monotonic`), how many parts may run at once, and the batch's observer
    (:func:`flask_batch.observe.observe`; ``request_id``: the batch request's
    ``X-Request-ID``)."""
    writer = intake.writer
    try:
        if execution.transaction is None and not execution.non_atomic_groups:
            _refuse_groups(requests)
        dependencies = dependency_indices(requests)
        references = plan_references(requests, dependencies) if intake.may_refer else None
    except BatchError as error:
        # It names the request by its place among all requests: in a multipart body, a
        # changeset's members are inside one part.
        if error.part is not None and writer.content_type.startswith(MULTIPART):
            part, member = body_location(requests, error.part - 1)
            error.at(part, None if isinstance(error, AtomicityUnavailable) else member)
        raise
    preferences = parse_preferences(prefer)
    # OData's multipart batches stop at the first error unless they prefer otherwise; in
    # order, one after another, as OData processes them: the answer ends with that error.
    ends = intake.odata and not (preferences.applied and preferences.continue_on_error)
    policy = Policy(
        deadline=None if limits.deadline is None else started + limits.deadline,
        workers=1 if ends else min(execution.workers_per_request, len(requests)),
        continue_on_error=preferences.continue_on_error and not ends,
        end_on_error=ends,
        max_answer_size=limits.max_answer_size,
        transaction=execution.transaction,
    )
    headers = [("Content-Type", writer.content_type), ("Cache-Control", "no-store")]
    headers += intake.headers
    if preferences.applied is not None:
        headers.append(("Preference-Applied", preferences.applied))
    batch_format = "multipart" if writer.content_type.startswith(MULTIPART) else "json"
    tally = Tally()
    observer = observe(request_id, batch_format, started, tally)
    if references is None:
        return RunPlan(dependencies, policy, headers, observer=observer, tally=tally)
    return RunPlan(references[0], policy, headers, requests, references[1], observer, tally)
