"""The Flask extension: batch routes whose parts run through ``app.wsgi_app``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from .options import resolve_options
from .wsgi import BatchEndpoint

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: The key of :class:`Batch` in ``app.extensions``.
EXTENSION_KEY = "batch"
# Every method reaches the endpoint: POST batches, GET/HEAD/OPTIONS describe it, others 405.
_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]


def add_batch_route(app: Flask, route: str = "/batch", name: str = "batch", **options: Any) -> None:
    """Register a batch endpoint at ``route`` (endpoint ``name``) on ``app``.

    ``options`` (see :func:`~flask_batch.options.resolve_options`) win over the app's
    ``BATCH_*`` config keys, read now, which win over the defaults.
    """
    settings = resolve_options(app.config, options)
    if name in app.view_functions:
        raise ValueError(f"the endpoint {name!r} already exists on {app.name!r}")

    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Looked up per call, so WSGI middleware installed later applies to the parts too.
        return app.wsgi_app(environ, start_response)

    endpoint = BatchEndpoint(
        dispatch, settings.limits, settings.execution, header_rules=settings.header_rules
    )

    def batch_view() -> Response:
        answer = endpoint.answer(request.environ)
        return Response(answer.body, status=answer.status, headers=answer.headers)

    app.add_url_rule(route, endpoint=name, view_func=batch_view, methods=_METHODS)


class Batch:
    """The Flask-Batch extension, with the app-factory pattern::

        batch = Batch(max_parts=500)
        def create_app():
            app = Flask(__name__)
            batch.init_app(app)
            return app

    Further routes on the same app: :func:`add_batch_route`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        route: str = "/batch",
        name: str = "batch",
        **options: Any,
    ) -> None:
        resolve_options({}, options)  # refuse unknown or invalid options now, not at init_app
        self.route = route
        self.name = name
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the batch route on ``app``; once per app."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(f"Flask-Batch is already registered on the app {app.name!r}")
        add_batch_route(app, self.route, self.name, **self.options)
        app.extensions[EXTENSION_KEY] = self
