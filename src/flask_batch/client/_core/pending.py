"""A response handed out before its batch is answered, and what reading it too early raises."""

from __future__ import annotations

from typing import Any, ClassVar


class BatchNotSent(RuntimeError):
    """A batched response was read before its batch was answered."""


class UnsentRequestsWarning(RuntimeWarning):
    """Queued requests were dropped unsent: their session or batch scope was closed or
    garbage-collected before its batch was sent. A ``RuntimeWarning``, so Python shows it by
    default, as it shows a coroutine that was never awaited."""


class BatchResponse:
    """A response a client hands out when a request is queued, filled in place when its
    batch is answered: each client's response class (a ``requests.Response``, an
    ``httpx.Response``) with this mixed in. Until then, reading one of ``_guarded`` raises
    :class:`BatchNotSent` with the reason in ``_pending``, and its repr says it is pending.
    """

    _pending: str | None = None
    _guarded: ClassVar[frozenset[str]] = frozenset()
    #: The request it answers (each client's response has one, with a method and a URL).
    request: Any

    def __getattribute__(self, name: str) -> Any:
        # Every attribute read goes through here, so it is kept short: the response classes
        # this is mixed into use object's own lookup, which is called directly.
        if name in type(self)._guarded and object.__getattribute__(self, "_pending") is not None:
            raise BatchNotSent(object.__getattribute__(self, "_pending"))
        return object.__getattribute__(self, name)

    def _described(self) -> str:
        """Its request in a few words (``GET http://...``), to name it in a warning."""
        return f"{self.request.method} {self.request.url}"

    def _pending_repr(self) -> str | None:
        """The repr of a response still pending, or None once it is filled."""
        return None if self._pending is None else "<BatchResponse [pending]>"
