"""Atomic groups on Django's database, behind the WSGI middleware: ``transaction.atomic``
around the whole group.

The hook's ``begin`` enters an atomic block on the group's thread; every member's view runs
inside it, so its own atomic blocks (``ATOMIC_REQUESTS`` included) are savepoints, and its
``transaction.on_commit`` callbacks wait for the group's commit. Commit leaves the block
normally; rollback marks it for rollback first.

Django closes a connection it finds out of autocommit at the start and end of every request
(``close_old_connections``), which would close the group's connection between its members:
while the group is open, that check is suspended on the group's connection (its thread's
own: other threads' connections are left alone), and run once the group has ended, as at
the end of a request.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from ..transactions import Group, TransactionHook

__all__ = ["GroupRolledBack", "django_transactions"]


class GroupRolledBack(transaction.TransactionManagementError):  # type: ignore[misc]
    """A group whose members all succeeded was rolled back all the same: one of them asked
    for it (``transaction.set_rollback``, or a database error caught inside the group's
    atomic block). Raised by commit, so every member fails, never a silent rollback."""


def django_transactions(using: str = DEFAULT_DB_ALIAS) -> TransactionHook:
    """The transaction hook for the database ``using``:
    ``BatchMiddleware(application, transaction=django_transactions())``."""

    def begin(group: Group) -> _AtomicGroup:
        return _AtomicGroup(group, using)

    return begin


class _AtomicGroup:
    """One group's atomic block on its thread's connection to ``using``."""

    def __init__(self, group: Group, using: str) -> None:
        self._group = group
        self._using = using
        self._connection: Any = connections[using]
        self._atomic = transaction.atomic(using=using)
        self._atomic.__enter__()
        # An instance attribute, so only this thread's connection is spared.
        self._connection.close_if_unusable_or_obsolete = _spare
        self._ended = False

    def commit(self) -> None:
        if self._ended:
            raise RuntimeError(f"atomic group {self._group.name!r} has ended already")
        if self._connection.needs_rollback:
            self._end(rollback=True)
            raise GroupRolledBack(
                f"atomic group {self._group.name!r} was marked for rollback by one of its "
                f"members (transaction.set_rollback, or a database error caught without an "
                f"atomic block of its own): nothing was committed"
            )
        self._end(rollback=False)

    def rollback(self) -> None:
        """Roll back; after a commit that raised (and so rolled back), do nothing."""
        if not self._ended:
            self._end(rollback=True)

    def _end(self, *, rollback: bool) -> None:
        self._ended = True
        try:
            if rollback:
                transaction.set_rollback(True, using=self._using)
            self._atomic.__exit__(None, None, None)
        finally:
            del self._connection.close_if_unusable_or_obsolete
            self._connection.close_if_unusable_or_obsolete()


def _spare() -> None:
    """Stands for ``close_if_unusable_or_obsolete`` while a group is open."""
