"""Clients that batch: :class:`Batching` (a ``requests.Session``); httpx later.

Needs the ``client`` extra: ``pip install flask-batch[client]``.
"""

from .requests import BatchFailed, Batching, BatchNotSent, BatchResponse

__all__ = ["BatchFailed", "BatchNotSent", "BatchResponse", "Batching"]
