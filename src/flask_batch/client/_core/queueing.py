"""Requests waiting for their batch: what every front end does when one is queued.

A front end turns its library's request into a :class:`~flask_batch.wire.model.SubRequest`
(:func:`sub_request`), checks it may go in a batch (:func:`origin`), and keeps it in a
:class:`Queue` with the response it handed out, by which later requests name it in
``depends_on``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Generic, TypeVar

from ...wire.http1 import HOP_BY_HOP
from ...wire.model import SubRequest
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

    def __len__(self) -> int:
        return len(self._queued)

    def __getitem__(self, position: int) -> tuple[EntryT, ResponseT]:
        return self._queued[position]

    def positions(self, dependencies: Iterable[object], where: str) -> tuple[int, ...]:
        """Where each response of ``dependencies`` was queued; ``ValueError`` if one was not
        queued in this queue (``where`` names it: "batch", "scope")."""
        positions = []
        for dependency in dependencies:
            position = self._positions.get(id(dependency))
            if position is None or self._queued[position][1] is not dependency:
                raise ValueError(f"depends_on must name responses queued earlier in this {where}")
            positions.append(position)
        return tuple(positions)

    def add(self, entry: EntryT, response: ResponseT) -> None:
        self._positions[id(response)] = len(self._queued)
        self._queued.append((entry, response))

    def take(self) -> list[tuple[EntryT, ResponseT]]:
        """Everything queued, in order; the queue is empty after."""
        queued, self._queued, self._positions = self._queued, [], {}
        return queued

    def abandon(self, reason: str) -> None:
        """Send nothing: each response says ``reason`` when read."""
        for _, response in self.take():
            response._pending = reason

    def drop(self, what: str, stacklevel: int) -> None:
        """Drop what is queued unsent, because of ``what``: each response says so when read,
        and an :class:`~.pending.UnsentRequestsWarning` names the requests. ``stacklevel``
        as in ``warnings.warn``."""
        unsent = [response for _, response in self.take()]
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
