"""Clients that batch: :class:`Batching` (a ``requests.Session``) and, in
:mod:`flask_batch.client.httpx`, transports for ``httpx.Client`` and ``httpx.AsyncClient``.

``Batching`` needs the ``client`` extra (``pip install flask-batch[client]``), the httpx
transports the ``httpx`` extra; each is imported only when used, so either works alone. They
share one core without I/O (``_core/``: the retry policy :class:`Retry`, the splitting of a
queue into batches that fit the endpoint's limits, both formats, how an answer is read and a
failure told) and differ only in how they adapt their library to it.

A :class:`Changeset` is an atomic group being queued (``with session.changeset() as group``),
which a later request may name in ``depends_on``.

:func:`close_shared_connections` closes the connections the clients keep open to batch
endpoints across sessions (docs/clients/index.md, "Connections"); :func:`forget_endpoints`
forgets what they learned of those endpoints (docs/clients/index.md, "What a client knows of
its endpoint").

:class:`BatchFailed` and :class:`BatchResponse` are what every client's errors and queued
responses are: ``except BatchFailed`` catches ``RequestsBatchFailed`` and
``HttpxBatchFailed`` alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._core.outcome import RETRYABLE_STATUSES, AsyncSentBatch, SentBatch
from ._core.pending import BatchNotSent, BatchResponse, UnsentRequestsWarning
from ._core.policy import IDEMPOTENT_METHODS, Retry
from ._core.queueing import Changeset
from ._core.report import BatchFailed
from ._drivers import close_shared_connections, forget_endpoints

if TYPE_CHECKING:
    from .requests import Batching

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRYABLE_STATUSES",
    "AsyncSentBatch",
    "BatchFailed",
    "BatchNotSent",
    "BatchResponse",
    "Batching",
    "Changeset",
    "Retry",
    "SentBatch",
    "UnsentRequestsWarning",
    "close_shared_connections",
    "forget_endpoints",
]


def __getattr__(name: str) -> Any:
    # The requests client is imported on first use: the httpx transports do not need it.
    if name == "Batching":
        from .requests import Batching  # noqa: PLC0415

        return Batching
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
