"""The values that pass between a run, the driver that does its I/O, and a front end: the
batch to send, what came back for it, and each request's final result."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ...wire.model import SubResponse

#: The front end's own response object (``requests.Response``, ``httpx.Response``).
OuterT = TypeVar("OuterT")


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch ready to send: POST ``body`` with ``content_type`` to the batch URL."""

    #: Indices of the queued requests it carries, in order.
    items: tuple[int, ...]
    body: bytes
    content_type: str
    #: Seconds its whole exchange may take: the smallest timeout of its requests (None: none).
    timeout: float | None = None
    #: ``"gzip"`` when :attr:`body` is compressed (the endpoint said it takes it), else None.
    content_encoding: str | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The batch request's own headers: its media type and coding, and the coding its
        answer may come in (the front end decodes it)."""
        headers = [("Content-Type", self.content_type), ("Accept-Encoding", "gzip")]
        if self.content_encoding is not None:
            headers.append(("Content-Encoding", self.content_encoding))
        return headers

    def overdue(self) -> str:
        """What to say when the exchange outlived :attr:`timeout`."""
        return f"the batch exchange took longer than its timeout ({self.timeout:g} s)"


@dataclass(frozen=True, slots=True)
class Reply(Generic[OuterT]):
    """What the batch endpoint answered to a :class:`PreparedBatch`."""

    status: int
    reason: str
    content_type: str | None
    retry_after: str | None
    body: bytes
    #: The driver's response object, handed back in :class:`Failed`.
    outer: OuterT
    #: The codings the endpoint says it takes in batch bodies (its ``Accept-Encoding``).
    accept_encoding: str | None = None


@dataclass(frozen=True, slots=True)
class Lost:
    """A :class:`PreparedBatch` got no answer: the connection failed, or a timeout."""

    error: BaseException
    #: True when the request surely never left (connection refused): safe to send again.
    sent_nothing: bool = False


@dataclass(frozen=True, slots=True)
class Answered(Generic[OuterT]):
    """A request's final answer, how many attempts it took, the batch response it came in."""

    response: SubResponse
    attempts: int
    outer: OuterT | None = None


@dataclass(frozen=True, slots=True)
class Failed(Generic[OuterT]):
    """A request that got no answer: why, the batch's response or error, attempts made."""

    reason: str
    outer: OuterT | None
    error: BaseException | None
    attempts: int


Result = Answered[OuterT] | Failed[OuterT]


def smallest(timeouts: Iterable[float | None]) -> float | None:
    """The smallest of the timeouts that are set, or None (no bound) if none is."""
    return min((timeout for timeout in timeouts if timeout is not None), default=None)
