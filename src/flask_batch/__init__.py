"""Flask-Batch: many HTTP requests in one, executed through the application's full pipeline.

Server::

    from flask_batch import add_batch_route
    add_batch_route(app)            # POST /batch now accepts batches

Other frameworks, without Flask: :class:`flask_batch.wsgi.BatchMiddleware` around any WSGI
application (Django, Falcon, Pyramid), :class:`flask_batch.asgi.BatchMiddleware` around any
ASGI application (FastAPI, Starlette, Quart, Litestar).

Client: :class:`flask_batch.client.Batching` (needs the ``client`` extra).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .execution import Execution
from .wire.errors import (
    BatchError,
    LengthRequired,
    LimitExceeded,
    MalformedBatch,
    MethodNotAllowed,
    UnsupportedMediaType,
)
from .wire.model import Limits, SubRequest, SubResponse

if TYPE_CHECKING:
    from .flask import Batch, add_batch_route

    __version__: str

_FLASK_NAMES = frozenset({"Batch", "add_batch_route"})

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


def __getattr__(name: str) -> Any:
    if name == "__version__":
        # The installed distribution's, read on first use: importing importlib.metadata takes
        # about 15 ms, which `import flask_batch` need not pay.
        from importlib.metadata import version  # noqa: PLC0415

        globals()[name] = version("flask-batch")
        return globals()[name]
    # The Flask extension is imported on first use, so that the framework-neutral modules
    # (flask_batch.wsgi, flask_batch.asgi) work where Flask is not installed.
    if name not in _FLASK_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        extension = importlib.import_module(".flask", __name__)
    except ImportError as error:
        if error.name is None or error.name.partition(".")[0] not in ("flask", "werkzeug"):
            raise
        raise ImportError(
            f"flask_batch.{name} is the Flask extension and needs Flask (>= 3), which is not "
            "installed: `pip install flask-batch` installs it. For other frameworks use "
            "flask_batch.wsgi.BatchMiddleware (WSGI) or flask_batch.asgi.BatchMiddleware (ASGI), "
            "which do not need Flask.",
            name=error.name,
        ) from error
    value = getattr(extension, name)
    globals()[name] = value
    return value
