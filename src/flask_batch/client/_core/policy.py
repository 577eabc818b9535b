"""When a batched request is sent again, and after how long: shared by every client, no I/O.

A part answered ``429`` or ``503`` (by default) is re-sent in a follow-up batch, after the
longer of its ``Retry-After`` and a capped exponential backoff with jitter, while its method
allows it (idempotent methods only, unless the user opts in), its attempts last, and the
whole exchange stays within a time budget. A batch that fails as a whole (the connection is
lost, or the batch endpoint itself answers ``429``, ``502``, ``503`` or ``504``) is retried by
the same rules.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime

#: Methods that mean the same when sent twice (RFC 9110, 9.2.2): retried by default.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Part statuses that say "not now, try again": the server did not act on the request.
RETRY_STATUSES = frozenset({429, 503})
#: Statuses of the batch request itself that are retried.
BATCH_RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Retry:
    """How batched requests are retried; ``retries=N`` on a client is ``Retry(retries=N)``.

    The defaults: 2 retries (3 attempts in all), parts answered 429 or 503 and batches that
    fail as a whole, idempotent methods only, backoff 0.25 s doubling up to 8 s with half of
    it random (jitter), and 30 s in all.
    """

    #: Re-sends after the first attempt; 0 turns retrying off.
    retries: int = 2
    #: Part statuses that are retried.
    statuses: Collection[int] = RETRY_STATUSES
    #: Methods that are retried; ``None``: every method, POST and PATCH included (opt-in).
    methods: Collection[str] | None = IDEMPOTENT_METHODS
    #: Statuses of the batch request itself that are retried.
    batch_statuses: Collection[int] = BATCH_RETRY_STATUSES
    #: The first backoff, in seconds; it doubles with every attempt.
    backoff: float = 0.25
    #: The longest backoff, in seconds (a ``Retry-After`` may ask for longer).
    max_backoff: float = 8.0
    #: Share of each backoff that is random: 0.5 waits between half of it and all of it.
    jitter: float = 0.5
    #: Seconds from the first send after which nothing is retried any more: a wait that would
    #: end later (a long ``Retry-After`` included) is not made, and the last answer stands.
    budget: float = 30.0
    _methods: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.retries) is not int or self.retries < 0:
            raise ValueError(f"retries must be an integer >= 0, not {self.retries!r}")
        for name in ("backoff", "max_backoff", "budget"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
        if not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {self.jitter!r}")
        methods = None if self.methods is None else frozenset(m.upper() for m in self.methods)
        object.__setattr__(self, "_methods", methods)
        object.__setattr__(self, "statuses", frozenset(self.statuses))
        object.__setattr__(self, "batch_statuses", frozenset(self.batch_statuses))

    @classmethod
    def of(cls, value: int | Retry) -> Retry:
        """The policy a client's ``retries=`` option stands for."""
        if isinstance(value, Retry):
            return value
        if type(value) is not int:
            raise TypeError(f"retries must be an int or a Retry, not {type(value).__name__}")
        return cls(retries=value)

    @property
    def attempts(self) -> int:
        """Attempts in all, the first one included."""
        return self.retries + 1

    def allows(self, method: str) -> bool:
        """Whether a request with ``method`` may be sent again."""
        return self._methods is None or method.upper() in self._methods

    def backoff_delay(self, attempts: int, random: Callable[[], float]) -> float:
        """The pause after ``attempts`` attempts: capped exponential, with jitter."""
        delay = min(self.max_backoff, self.backoff * 2.0 ** max(0, attempts - 1))
        return float(delay * (1 - self.jitter * random()))

    def delay(self, attempts: int, retry_after: float | None, random: Callable[[], float]) -> float:
        """The pause before the next attempt: the backoff, or longer if the server asks."""
        backoff = self.backoff_delay(attempts, random)
        return backoff if retry_after is None else max(backoff, float(retry_after))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait that a ``Retry-After`` value asks for (RFC 9110, 10.2.3), or None.

    Both forms: delay-seconds (``120``) and an HTTP-date (``Fri, 31 Dec 1999 23:59:59 GMT``,
    and the obsolete forms); a date in the past is 0. ``now`` is a :func:`time.time` value.
    Anything unreadable is None (no preference), never an error.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if date.tzinfo is None:  # "-0000" dates come back naive: they are UTC too
        date = date.replace(tzinfo=UTC)
    return max(0.0, date.timestamp() - (time.time() if now is None else now))
