"""What a sent batch came to, for its caller: whether every request succeeded
(:attr:`SentBatch.ok`), which failed (:meth:`SentBatch.failed`), and sending the ones that may
succeed on a second try again (:meth:`SentBatch.retry_failed`). Each front end gives the
requests as :class:`Attempt` records and a callable that re-sends some of them; the rules
are here, once.

A request *failed* when it got no answer (the connection was lost, the batch stopped
before it, the answer had no part for it) or its answer's status is 400 or more (``424``
included: something it depends on failed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ...wire.fields import number
from ...wire.model import Group, SubRequest
from .groups import failed_with, units
from .model import Answered, OuterT, Result
from .policy import Retry
from .queueing import refers

ResponseT = TypeVar("ResponseT")

#: Statuses that may be different on a second try: a timeout, a dependency that failed
#: (``424``: the request never ran), too many requests, and any server error.
RETRYABLE_STATUSES = frozenset({408, 424, 429, *range(500, 600)})


@dataclass(slots=True)
class Attempt:
    """One request of a sent batch, as :meth:`SentBatch.retry_failed` needs it."""

    method: str
    #: Positions, in the batch, of the requests it depends on (all earlier).
    depends_on: tuple[int, ...]
    #: Its atomic group, if any: a group is re-sent whole or not at all.
    group: Group | None
    #: The status it was answered with; None: no answer.
    status: int | None
    #: It names another request of the batch (``$1/items``): it goes again only with every
    #: request it depends on, or the server could not resolve the name.
    refers: bool = False


def status_of(result: Result[OuterT]) -> int | None:
    """The status a request's final result has, or None for no answer."""
    return result.response.status if isinstance(result, Answered) else None


def attempt_of(request: SubRequest, depends_on: tuple[int, ...], result: Result[OuterT]) -> Attempt:
    """What ``request``, which depends on the requests at ``depends_on``, came to."""
    return Attempt(request.method, depends_on, request.group, status_of(result), refers(request))


def outers_of(results: Sequence[Result[OuterT]]) -> list[OuterT]:
    """The batch answers that the requests' answers came in, each once, in order."""
    seen: dict[int, OuterT] = {}
    for result in results:
        if isinstance(result, Answered) and result.outer is not None:
            seen.setdefault(id(result.outer), result.outer)
    return list(seen.values())


def failed(status: int | None) -> bool:
    """Whether a request answered ``status`` (None: not answered) failed."""
    return status is None or status >= 400


def to_retry(attempts: Sequence[Attempt], policy: Retry) -> list[int]:
    """The positions, in order, of the failed requests that go again: those that got no
    answer or a :data:`RETRYABLE_STATUSES`, whose methods ``policy`` allows (a POST may have
    run; ``Retry(methods=None)`` sends it again). A ``424`` never ran: it goes again when
    each of its failed dependencies goes too (in the same batch, still its dependencies, so
    it runs only if they now succeed), whatever its method. An atomic group goes whole, when
    the status it failed with says so, or not at all. A request that names another by its id
    goes only with every request it depends on (the name must be in the new batch)."""
    chosen: list[int] = []
    for unit in units([attempt.group for attempt in attempts]):
        members = [attempts[place] for place in unit]
        statuses = [member.status for member in members]
        if not all(failed(status) for status in statuses):
            continue
        known = [status for status in statuses if status is not None]
        status = failed_with(known) if len(known) == len(statuses) else None
        outside = [d for place in unit for d in attempts[place].depends_on if d not in unit]
        if any(member.refers for member in members) and not all(d in chosen for d in outside):
            goes = False  # it names a request that is not sent again
        elif status == 424:
            goes = all(not failed(attempts[d].status) or d in chosen for d in outside)
        else:
            goes = (status is None or status in RETRYABLE_STATUSES) and all(
                policy.allows(member.method) for member in members
            )
        if goes:
            chosen += unit
    return chosen


def reported_failures(headers: Sequence[str | None]) -> int | None:
    """The failed parts that the ``Batch-Failures`` headers of a send's batch answers count
    together, or None if there was no answer or any had none (or an unreadable one)."""
    if not headers:
        return None
    total = 0
    for value in headers:
        count = None if value is None else number(value.strip())
        if count is None:
            return None
        total += count
    return total


class _Outcome(list[ResponseT]):
    """What :class:`SentBatch` and :class:`AsyncSentBatch` share: all but the sending."""

    def __init__(
        self,
        responses: Iterable[ResponseT],
        attempts: Sequence[Attempt],
        policy: Retry,
        reported: int | None,
    ) -> None:
        super().__init__(responses)
        self._attempts = list(attempts)
        self._policy = policy
        #: What the server's ``Batch-Failures`` headers said when the batch was first sent:
        #: how many of its parts failed (None: an answer had no such header, or none came).
        self.reported_failures = reported

    @property
    def ok(self) -> bool:
        """Whether every request got an answer below 400."""
        return not any(failed(attempt.status) for attempt in self._attempts)

    def failed(self) -> list[ResponseT]:
        """The responses of the requests that failed, in request order (one that got no
        answer raises :class:`~flask_batch.client.BatchNotSent`, with why, when read)."""
        return [
            response
            for response, attempt in zip(self, self._attempts, strict=True)
            if failed(attempt.status)
        ]

    def _retried(self, positions: list[int], statuses: list[int | None]) -> None:
        """The requests at ``positions`` were sent again, and answered ``statuses``."""
        for position, status in zip(positions, statuses, strict=True):
            self._attempts[position].status = status


class SentBatch(_Outcome[ResponseT]):
    """The responses of a sent batch, in request order (a list, as before), and what they
    came to: :attr:`ok`, :meth:`failed`, :meth:`retry_failed`.

    ``resend(positions)`` sends the requests at ``positions`` again as one new batch, with
    their dependencies among them, fills their responses in place, and answers each one's new
    status (None: no answer).
    """

    def __init__(
        self,
        responses: Iterable[ResponseT],
        attempts: Sequence[Attempt],
        policy: Retry,
        resend: Callable[[list[int]], list[int | None]],
        reported: int | None = None,
    ) -> None:
        super().__init__(responses, attempts, policy, reported)
        self._resend = resend

    def retry_failed(self) -> SentBatch[ResponseT]:
        """Send the failed requests that may succeed on a second try (:func:`to_retry`) again,
        as one new batch; their responses, the objects already handed out, are filled in
        place. Answers this batch, updated (``batch.retry_failed().ok``); nothing is sent
        when no failure may be retried. Never raises for a request that fails again: it
        stays in :meth:`failed`."""
        positions = to_retry(self._attempts, self._policy)
        if positions:
            self._retried(positions, self._resend(positions))
        return self


class AsyncSentBatch(_Outcome[ResponseT]):
    """:class:`SentBatch` of an async client: ``await batch.retry_failed()``."""

    def __init__(
        self,
        responses: Iterable[ResponseT],
        attempts: Sequence[Attempt],
        policy: Retry,
        resend: Callable[[list[int]], Awaitable[list[int | None]]],
        reported: int | None = None,
    ) -> None:
        super().__init__(responses, attempts, policy, reported)
        self._resend = resend

    async def retry_failed(self) -> AsyncSentBatch[ResponseT]:
        """What :meth:`SentBatch.retry_failed` does, awaited."""
        positions = to_retry(self._attempts, self._policy)
        if positions:
            self._retried(positions, await self._resend(positions))
        return self
