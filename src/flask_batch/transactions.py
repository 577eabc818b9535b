"""The transaction hook: what makes an atomic group (an OData changeset, a JSON
``atomicityGroup``) all or nothing in the application's own database.

A route is given a hook; for each group the execution layer calls it once to begin a
transaction, runs the group's members one after another, then commits it when every member
succeeded (status below 400, no exception) or rolls it back otherwise, also when the
deadline passes inside the group or the client leaves (docs/design.md, atomic groups).

The hook's ``begin``, each member's dispatch, and ``commit`` or ``rollback`` run in one
thread (WSGI) or one task (ASGI), in that order, so a context variable or thread-local that
``begin`` sets is what the members' views see: that is how an integration binds the views'
database session to the group's transaction. Integrations for SQLAlchemy, Flask-SQLAlchemy
and Django live in :mod:`flask_batch.integrations`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

# The group a hook is given is the wire model's own (every member of the group carries it).
from .wire.model import Group

__all__ = [
    "AsyncTransaction",
    "AsyncTransactionHook",
    "Group",
    "Transaction",
    "TransactionHook",
]


class Transaction(Protocol):
    """One group's transaction, begun by a :data:`TransactionHook`."""

    def commit(self) -> None:
        """Make the members' writes durable; raising fails every member of the group."""

    def rollback(self) -> None:
        """Undo every write of the members; called at most once, instead of commit."""


class AsyncTransaction(Protocol):
    """One group's transaction, for ASGI applications."""

    async def commit(self) -> None:
        """Make the members' writes durable; raising fails every member of the group."""

    async def rollback(self) -> None:
        """Undo every write of the members; called at most once, instead of commit."""


#: Begins a group's transaction (WSGI and Flask routes).
TransactionHook = Callable[[Group], Transaction]
#: Begins a group's transaction (ASGI routes).
AsyncTransactionHook = Callable[[Group], Awaitable[AsyncTransaction]]
