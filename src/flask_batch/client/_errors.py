"""Errors, and the pending state of a queued response, that every client shares."""

from __future__ import annotations

from typing import Any, ClassVar


class BatchNotSent(RuntimeError):
    """A batched response was read before its batch was answered."""


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
