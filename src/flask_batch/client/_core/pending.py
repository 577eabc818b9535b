"""Errors, warnings, and the pending state of a queued response, that every client shares."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar


class BatchNotSent(RuntimeError):
    """A batched response was read before its batch was answered."""


class UnsentRequestsWarning(RuntimeWarning):
    """Queued requests were dropped unsent: their session or batch scope was closed or
    garbage-collected before its batch was sent. A ``RuntimeWarning``, so Python shows it by
    default, as it shows a coroutine that was never awaited."""


#: How many of the requests dropped a warning names.
_NAMED = 3


def drop_unsent(what: str, unsent: Sequence[tuple[Pending, str, str]], stacklevel: int) -> None:
    """Say that the queued requests ``unsent`` (each response, with its request's method and
    URL) will never be sent, because of ``what``: on each response, and in a warning now.
    ``stacklevel`` as in ``warnings.warn``, counted from the caller."""
    for response, _, _ in unsent:
        response._pending = f"the batch was never sent: {what}"
    count = len(unsent)
    named = ", ".join(f"{method} {url}" for _, method, url in unsent[:_NAMED])
    if count > _NAMED:
        named += f" and {count - _NAMED} more"
    were = "1 queued request was" if count == 1 else f"{count} queued requests were"
    warnings.warn(
        f"{what}: {were} never sent ({named})",
        UnsentRequestsWarning,
        stacklevel=stacklevel + 1,
    )


class Pending:
    """Mixed into a client's response class: reading one of ``_guarded`` before the batch
    was answered raises :class:`BatchNotSent` with the reason in ``_pending``."""

    _pending: str | None = None
    _guarded: ClassVar[frozenset[str]] = frozenset()

    def __getattribute__(self, name: str) -> Any:
        # Every attribute read goes through here, so it is kept short: the response classes
        # this is mixed into use object's own lookup, which is called directly.
        if name in type(self)._guarded and object.__getattribute__(self, "_pending") is not None:
            raise BatchNotSent(object.__getattribute__(self, "_pending"))
        return object.__getattribute__(self, name)

    def _pending_repr(self) -> str | None:
        """The repr of a response still pending, or None once it is filled."""
        if self._pending is None:
            return None
        return f"<{type(self).__name__} [pending]>"
