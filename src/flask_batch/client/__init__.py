"""Clients that batch: :class:`Batching` (a ``requests.Session``) and, in
:mod:`flask_batch.client.httpx`, transports for ``httpx.Client`` and ``httpx.AsyncClient``.

``Batching`` needs the ``client`` extra (``pip install flask-batch[client]``), the httpx
transports the ``httpx`` extra; each is imported only when used, so either works alone. Both
share the retry policy (:class:`Retry`), the splitting of a queue into batches that fit the
endpoint's limits, and how a batch's answer is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._core.pending import BatchNotSent, UnsentRequestsWarning
from ._core.policy import IDEMPOTENT_METHODS, Retry

if TYPE_CHECKING:
    from .requests import BatchFailed, Batching, BatchResponse

__all__ = [
    "IDEMPOTENT_METHODS",
    "BatchFailed",
    "BatchNotSent",
    "BatchResponse",
    "Batching",
    "Retry",
    "UnsentRequestsWarning",
]

_FROM_REQUESTS = frozenset({"BatchFailed", "BatchResponse", "Batching"})


def __getattr__(name: str) -> Any:
    # The requests client is imported on first use: the httpx transports do not need it.
    if name in _FROM_REQUESTS:
        from . import requests  # noqa: PLC0415

        return getattr(requests, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
