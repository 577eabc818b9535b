"""Flask-Batch: many HTTP requests in one, executed through the application's full pipeline.

Server::

    from flask_batch import add_batch_route
    add_batch_route(app)            # POST /batch now accepts batches

Client: :class:`flask_batch.client.Batching` (needs the ``client`` extra).
"""

from .engine import Execution
from .flask import Batch, add_batch_route
from .wire.errors import (
    BatchError,
    LengthRequired,
    LimitExceeded,
    MalformedBatch,
    MethodNotAllowed,
    UnsupportedMediaType,
)
from .wire.model import Limits, SubRequest, SubResponse

__all__ = [
    "Batch",
    "BatchError",
    "Execution",
    "LengthRequired",
    "LimitExceeded",
    "Limits",
    "MalformedBatch",
    "MethodNotAllowed",
    "SubRequest",
    "SubResponse",
    "UnsupportedMediaType",
    "add_batch_route",
]
