"""Requests waiting for their batch: what every front end does when one is queued.

A front end turns its library's request into a :class:`~flask_batch.wire.model.SubRequest`
(:func:`sub_request`), checks it may go in a batch (:func:`origin`, or a reference:
:func:`is_reference`), and keeps it in a :class:`Queue` with the response it handed out, by
which later requests name it in ``depends_on``. Requests queued in a
:meth:`Queue.changeset` block are the members of one atomic group (:class:`Changeset`), which
:func:`grouped` turns into the wire's :class:`~flask_batch.wire.model.Group`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar
from urllib.parse import quote

from ...wire.http1 import HOP_BY_HOP
from ...wire.model import Group, SubRequest
from .pending import BatchResponse, UnsentRequestsWarning

#: The front end's own record of a queued request.
EntryT = TypeVar("EntryT")
#: The response it handed out for it.
ResponseT = TypeVar("ResponseT", bound=BatchResponse)

#: Request headers a part does not carry: they describe the batch request's connection (the
#: server takes every part's Host from the batch request, docs/design.md section 3).
NOT_CARRIED = HOP_BY_HOP | {"content-length", "host"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: How many of the requests dropped a warning names.
_NAMED = 3
#: What a request's own id may be: OData's request-id (unreserved characters), so that a
#: reference (``$<id>``) names it in a URL as it is, and a header carries it as it is.
_REQUEST_ID = re.compile(r"[A-Za-z0-9\-._~]+")
#: A reference at the start of a target (``$ada/orders``), or the whole of an ETag header.
_REFERENCE = re.compile(r"\$([A-Za-z0-9\-._~]+)(?:[/?#]|$)")
#: The headers whose whole value may be a reference: the ETag of the request it names.
_ETAG_HEADERS = frozenset({"if-match", "if-none-match"})
#: What stays as written in a reference: every visible ASCII character.
_VISIBLE = "".join(chr(code) for code in range(0x21, 0x7F))


def check_content_id(content_id: object) -> str:
    """A request's own id, as a front end's ``content_id=`` gives it; ``ValueError`` unless
    it is letters, digits, ``-``, ``.``, ``_`` or ``~``."""
    if not isinstance(content_id, str) or not _REQUEST_ID.fullmatch(content_id):
        raise ValueError(
            "content_id must be letters, digits, '-', '.', '_' or '~' (OData's request id, "
            f"which a reference $<id> names in a URL), not {content_id!r}"
        )
    return content_id


def named_ids(target: str | None, headers: Iterable[tuple[str, str]]) -> list[str]:
    """The ids of the requests of its batch that a request names: ``$<id>`` starting its
    ``target``, or the whole of its ``If-Match``/``If-None-Match``."""
    values = [value.strip() for name, value in headers if name.lower() in _ETAG_HEADERS]
    found = [_REFERENCE.match(text) for text in (target or "", *values)]
    return [match.group(1) for match in found if match is not None]


def refers(request: SubRequest) -> bool:
    """Whether ``request`` names another request of its batch (:func:`named_ids`)."""
    return bool(named_ids(request.target, request.headers))


def is_reference(url: str) -> bool:
    """Whether ``url`` refers to an earlier request of its batch (``$1/items``: OData's
    ``$<Content-ID>`` as the first segment of a relative URL). The server resolves it, so it
    is sent as written, and it has no origin of its own to check."""
    return url.startswith("$")


def reference_target(reference: str, query: str) -> str:
    """The request-target a reference goes as: its path as written (what a request line
    cannot carry percent-encoded), then ``query``, the query its library built from the
    reference's own and the ``params``."""
    path = quote(reference.partition("?")[0].partition("#")[0], safe=_VISIBLE)
    return f"{path}?{query}" if query else path


class Changeset:
    """An atomic group being queued (``with session.changeset() as group``): a changeset in
    the multipart format, an ``atomicityGroup`` in JSON. A request queued after the block may
    name it in ``depends_on``: it then runs only if the whole group succeeded."""

    def __init__(self, *, closed: bool = False) -> None:
        #: The responses handed out for its members, in order.
        self.responses: list[BatchResponse] = []
        #: Whether its block has ended (its members are all known).
        self.closed = closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Changeset of {len(self.responses)} requests, {state}>"


def grouped(
    requests: Sequence[SubRequest],
    changesets: Sequence[Changeset | None],
    name: Callable[[], str],
) -> list[SubRequest]:
    """``requests`` with the members of each changeset (``changesets[i]``: request ``i``'s,
    the same for adjacent members) given one :class:`~flask_batch.wire.model.Group`, named by
    ``name()``, as the wire model wants them."""
    result = list(requests)
    start = 0
    while start < len(result):
        changeset, end = changesets[start], start + 1
        if changeset is not None:
            while end < len(result) and changesets[end] is changeset:
                end += 1
            group = Group(name(), end - start, start)
            result[start:end] = [request._replace(group=group) for request in result[start:end]]
        start = end
    return result


def origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    """A URL's origin (RFC 6454): scheme and host in lower case, the default port filled in.
    Only requests with the batch URL's origin can be batched."""
    scheme = scheme.lower()
    return scheme, host.lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def sub_request(
    method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
) -> SubRequest:
    """A request as a part carries it: without the headers of the batch's connection."""
    carried = tuple((name, value) for name, value in headers if name.lower() not in NOT_CARRIED)
    return SubRequest(method, target, carried, body)


class Queue(Generic[EntryT, ResponseT]):
    """What a front end queued for its next batch, in order: each request's entry (the front
    end's own record of it) and the response handed out for it."""

    def __init__(self) -> None:
        self._queued: list[tuple[EntryT, ResponseT]] = []
        self._positions: dict[int, int] = {}  # id() of a response handed out -> its position
        self._ids: dict[str, int] = {}  # the ids requests were given -> their positions
        #: The changeset being queued: what is queued now is its member. None: none is.
        self.open: Changeset | None = None

    def __len__(self) -> int:
        return len(self._queued)

    def __getitem__(self, position: int) -> tuple[EntryT, ResponseT]:
        return self._queued[position]

    def positions(self, dependencies: Iterable[object], where: str) -> tuple[int, ...]:
        """Where each response of ``dependencies`` was queued (a :class:`Changeset`: each of
        its members); ``ValueError`` if one was not queued in this queue (``where`` names it:
        "batch", "scope")."""
        positions = []
        for dependency in dependencies:
            members: Iterable[object] = [dependency]
            if isinstance(dependency, Changeset):
                if not dependency.closed:
                    raise ValueError(
                        "a request cannot depend on the changeset it is in: its members "
                        "succeed or fail together"
                    )
                members = dependency.responses
            for member in members:
                position = self._positions.get(id(member))
                if position is None or self._queued[position][1] is not member:
                    raise ValueError(
                        f"depends_on must name responses (or changesets) queued earlier in "
                        f"this {where}"
                    )
                positions.append(position)
        return tuple(positions)

    def referenced(self, target: str | None, headers: Iterable[tuple[str, str]]) -> list[int]:
        """Where the requests a request refers to were queued (``$<id>`` starting its
        ``target``, or the whole of its ``If-Match``/``If-None-Match``), those of the changeset
        being queued aside (a group goes whole). A reference ties two requests as
        ``depends_on`` does: the server runs the one after the other, and they must go in one
        batch and be retried together. An id no request of this queue has is left to the
        server, which refuses it."""
        if not self._ids:  # no request of this queue has an id: none can be referred to
            return []
        in_group = {id(response) for response in self.open.responses} if self.open else set()
        return [
            position
            for name in named_ids(target, headers)
            if (position := self._ids.get(name)) is not None
            and id(self._queued[position][1]) not in in_group
        ]

    def add(self, entry: EntryT, response: ResponseT, content_id: str | None = None) -> None:
        """Queue ``entry``, whose response is ``response``; ``content_id``: the id it was given
        (``ValueError`` if another request of the queue has it)."""
        if content_id is not None:
            if content_id in self._ids:
                raise ValueError(
                    f"content_id {content_id!r} is already the id of a request queued for "
                    "this batch: ids name one request each"
                )
            self._ids[content_id] = len(self._queued)
        self._positions[id(response)] = len(self._queued)
        self._queued.append((entry, response))
        if self.open is not None:
            self.open.responses.append(response)

    @contextmanager
    def changeset(self) -> Iterator[Changeset]:
        """A block whose queued requests are one atomic group. If it raises, they are taken
        back (each response says so): an unfinished group is never sent."""
        if self.open is not None:
            raise ValueError("a changeset cannot contain another changeset")
        changeset = self.open = Changeset()
        start = len(self._queued)
        try:
            yield changeset
        except BaseException:
            for _, response in self._queued[start:]:
                response._pending = "the changeset was not sent: its `with` block raised"
                del self._positions[id(response)]
            del self._queued[start:]
            self._ids = {name: at for name, at in self._ids.items() if at < start}
            raise
        finally:
            self.open = None
            changeset.closed = True

    def take(self) -> list[tuple[EntryT, ResponseT]]:
        """Everything queued, in order; the queue is empty after. ``RuntimeError`` inside a
        changeset block: its group is not complete yet."""
        if self.open is not None:
            raise RuntimeError(
                "the batch cannot be sent inside a changeset block: its group is not "
                "complete yet; send it after the block"
            )
        return self._take()

    def _take(self) -> list[tuple[EntryT, ResponseT]]:
        queued, self._queued, self._positions, self._ids = self._queued, [], {}, {}
        return queued

    def abandon(self, reason: str) -> None:
        """Send nothing: each response says ``reason`` when read."""
        for _, response in self._take():
            response._pending = reason

    def drop(self, what: str, stacklevel: int) -> None:
        """Drop what is queued unsent, because of ``what``: each response says so when read,
        and an :class:`~.pending.UnsentRequestsWarning` names the requests. ``stacklevel``
        as in ``warnings.warn``."""
        unsent = [response for _, response in self._take()]
        if not unsent:
            return
        for response in unsent:
            response._pending = f"the batch was never sent: {what}"
        count = len(unsent)
        named = ", ".join(response._described() for response in unsent[:_NAMED])
        if count > _NAMED:
            named += f" and {count - _NAMED} more"
        were = "1 queued request was" if count == 1 else f"{count} queued requests were"
        warnings.warn(
            f"{what}: {were} never sent ({named})",
            UnsentRequestsWarning,
            stacklevel=stacklevel + 1,
        )
