"""The Flask extension: batch routes whose parts run through ``app.wsgi_app``."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from .groups import check_hook
from .intake import Answer
from .openapi import COMPONENTS, path_item_for
from .options import resolve_options
from .wsgi import BatchEndpoint, start_with_first_chunk

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from flask.sansio.blueprints import BlueprintSetupState

    from .options import Settings

__all__ = ["EXTENSION_KEY", "Batch", "add_batch_route", "describe_batch_routes"]

#: The key of :class:`Batch` in ``app.extensions``.
EXTENSION_KEY = "batch"
#: The key, in ``app.extensions``, of each batch route's settings by endpoint name.
_ROUTES_KEY = "flask_batch.routes"
# Every method reaches the endpoint: POST batches, GET/HEAD/OPTIONS describe it, others 405.
_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
# On a shared path, only POST: the application's own views at the path take the others.
_SHARED_METHODS = ["POST"]
_OTHER_APPS = (
    "for another WSGI application use flask_batch.wsgi.BatchMiddleware, "
    "for an ASGI application flask_batch.asgi.BatchMiddleware"
)


def add_batch_route(
    app: Flask | Blueprint, route: str = "/batch", name: str = "batch", **options: Any
) -> None:
    """Register a batch endpoint at ``route`` (endpoint ``name``) on ``app``: a Flask app, or
    a Blueprint (the route then lives under its ``url_prefix`` at each of its registrations).

    ``options`` (see :func:`~flask_batch.options.resolve_options`) win over the app's
    ``BATCH_*`` config keys, read when the route is registered on the app (for a blueprint:
    when the blueprint is registered, from that app), which win over the defaults. Flask's
    ``MAX_CONTENT_LENGTH``, read then too, caps ``max_body_size``.
    """
    if isinstance(app, Flask):
        _add_route(app, route, name, options)
    elif isinstance(app, Blueprint):
        _add_blueprint_route(app, route, name, options)
    else:
        raise TypeError(
            f"add_batch_route needs a Flask app or a Blueprint, not {type(app).__name__}; "
            + _OTHER_APPS
        )


def _add_blueprint_route(
    blueprint: Blueprint, route: str, name: str, options: dict[str, Any]
) -> None:
    """Register the route on every app ``blueprint`` is registered on, once per registration
    (each with its own prefix, name, endpoint and pool)."""
    if "." in name:
        raise ValueError(f"the endpoint name of a blueprint's route cannot contain '.': {name!r}")
    _check(options)  # refuse unknown or invalid options now, not at registration

    def register(state: BlueprintSetupState) -> None:
        if not isinstance(state.app, Flask):
            raise TypeError(
                f"the blueprint {blueprint.name!r} has a batch route, which runs on a Flask app, "
                f"not on {type(state.app).__name__}; " + _OTHER_APPS
            )
        # The rule and endpoint as Flask's BlueprintSetupState.add_url_rule makes them.
        rule = route
        if state.url_prefix is not None:
            rule = "/".join((state.url_prefix.rstrip("/"), route.lstrip("/")))
        endpoint = f"{state.name_prefix}.{state.name}.{name}".lstrip(".")
        _add_route(
            state.app,
            rule,
            endpoint,
            options,
            subdomain=state.subdomain,
            defaults=state.url_defaults,
        )

    blueprint.record(register)


def _add_route(
    app: Flask, rule: str, name: str, options: dict[str, Any], **rule_options: Any
) -> None:
    settings = _route_settings(app, options)
    routing = settings.routing
    methods = _SHARED_METHODS if routing.shared_path else _METHODS
    _refuse_taken(app, rule, name, rule_options.get("subdomain"), methods)

    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Looked up per call, so WSGI middleware installed later applies to the parts too.
        return app.wsgi_app(environ, start_response)

    endpoint = BatchEndpoint(dispatch, settings)

    def batch_view(**view_args: object) -> Response:
        # ``view_args``: the variables of the rule (a blueprint's url_prefix, the path of a
        # shared route such as /<account>/<container>); the parts carry their own.
        if not routing.takes(request.method, request.query_string.decode("latin-1")):
            _not_a_batch(app)
        return _BatchResponse(endpoint.answer(_batch_environ()))

    app.add_url_rule(rule, name, batch_view, methods=methods, **rule_options)
    app.extensions.setdefault(_ROUTES_KEY, {})[name] = settings


class _BatchResponse(Response):
    """A batch's answer as a Flask response, whose head goes out with its first chunk (the
    WSGI middleware's, :func:`flask_batch.wsgi.start_with_first_chunk`)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body, status=answer.status, headers=answer.headers)
        self.answer = answer

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.answer.tally is None:
            return super().__call__(environ, start_response)
        # The application's after_request functions had their say: their headers count.
        body, status, headers = self.get_wsgi_response(environ)
        answer = Answer(status, list(headers), body, self.answer.tally)
        return start_with_first_chunk(answer, start_response)


def _not_a_batch(app: Flask) -> NoReturn:
    """Refuse a POST at a shared path that lacks the route's ``batch_query``, as Flask
    refuses a method none of the path's views takes: Flask routes a path and a method to one
    view, whatever the query, so POST there is the batch route's alone. ``405`` naming the
    methods of the path's other views, or ``404`` when it has none."""
    adapter = app.create_url_adapter(request)
    others = set() if adapter is None else set(adapter.allowed_methods()) - {"POST"}
    if not others - {"OPTIONS"}:
        raise NotFound()
    raise MethodNotAllowed(sorted(others))


def _check(options: dict[str, Any]) -> None:
    """Refuse unknown or invalid keyword options, and a transaction hook that is not a plain
    function (the extension runs on WSGI), before any app is at hand."""
    check_hook(resolve_options({}, options).execution.transaction, asynchronous=False)


def _batch_environ() -> WSGIEnvironment:
    """The batch request's environ, its body readable again if the application already read
    it (a ``before_request`` hook calling ``request.get_data()``, an extension): the raw
    ``wsgi.input`` would then wait for bytes that never come, until the client gave up.

    Werkzeug's ``request.stream`` is then the one to read: it never reads past the declared
    length, and ``get_data()`` gives back what the application's own call cached (a body
    read without caching leaves only its rest: the batch is then refused as short, at once).
    An untouched body is read from ``wsgi.input`` as it arrives.
    """
    environ = request.environ
    if "stream" not in request.__dict__:  # Werkzeug's cached_property: never touched
        return environ
    return {**environ, "wsgi.input": io.BytesIO(request.get_data(cache=True))}


def _route_settings(app: Flask, options: dict[str, Any]) -> Settings:
    """The route's settings, read now from ``options`` and the config.

    Flask's own ``MAX_CONTENT_LENGTH`` bounds the batch body too (the endpoint reads it from
    ``wsgi.input``, where Flask does not look): ``max_body_size`` is the smaller of the two.
    """
    settings = resolve_options(app.config, options)
    ceiling = app.config.get("MAX_CONTENT_LENGTH")
    if ceiling is None:
        return settings
    if type(ceiling) is not int or ceiling < 1:
        raise ValueError(
            f"MAX_CONTENT_LENGTH must be a positive integer or None on an app with a batch "
            f"route (which needs a body), not {ceiling!r}"
        )
    if ceiling < settings.limits.max_body_size:
        limits = dataclasses.replace(settings.limits, max_body_size=ceiling)
        settings = dataclasses.replace(settings, limits=limits)
    return settings


def _refuse_taken(
    app: Flask, rule: str, name: str, subdomain: str | None, methods: list[str]
) -> None:
    """Refuse an endpoint name in use, and a rule already routed for any of the batch
    route's ``methods``: the first route would answer every request, the batch route none."""
    if name in app.view_functions:
        raise ValueError(f"the endpoint {name!r} already exists on {app.name!r}")
    if subdomain is None:
        subdomain = app.url_map.default_subdomain
    for existing in app.url_map.iter_rules():
        if (
            existing.rule == rule
            and existing.subdomain == subdomain
            and existing.host is None
            and not existing.build_only
            and (existing.methods is None or not existing.methods.isdisjoint(methods))
        ):
            raise ValueError(
                f"the path {rule!r} is already routed to the endpoint {existing.endpoint!r} "
                f"on {app.name!r}, which would answer every batch sent there"
            )


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
        _check(options)  # refuse unknown or invalid options now, not at init_app
        self.route = route
        self.name = name
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the batch route on ``app``; once per app.

        Only apps: the extension lives in ``app.extensions``, once per app, which a blueprint
        (registered on any number of apps, under several names) has not.
        """
        if not isinstance(app, Flask):
            raise TypeError(
                f"Batch.init_app takes a Flask app, not {type(app).__name__}; for a blueprint use "
                "add_batch_route(blueprint, route, name, **options)"
            )
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(f"Flask-Batch is already registered on the app {app.name!r}")
        add_batch_route(app, self.route, self.name, **self.options)
        app.extensions[EXTENSION_KEY] = self


class _Components(Protocol):
    schemas: dict[str, Any]

    def schema(self, component_id: str, component: dict[str, Any]) -> object: ...


class _APISpec(Protocol):
    """What :func:`describe_batch_routes` uses of an ``apispec.APISpec``."""

    @property
    def components(self) -> _Components: ...

    def path(self, path: str | None = None, **details: Any) -> object: ...


def describe_batch_routes(spec: _APISpec, app: Flask) -> None:
    """Describe ``app``'s batch routes in an apispec ``APISpec`` (flask-smorest's ``api.spec``).

    Call it once the routes are registered. Each route is described with the limits it
    enforces (its options, the ``BATCH_*`` config and ``MAX_CONTENT_LENGTH``), its rule's
    variables as path parameters; the rule, the view and the app are passed on to apispec's
    Flask plugins (flask-smorest's, apispec-webframeworks'), which require one of them.
    """
    routes: dict[str, Settings] = app.extensions.get(_ROUTES_KEY, {})
    if not routes:
        raise LookupError(f"the app {app.name!r} has no batch route to describe")
    for name, schema in COMPONENTS.items():
        if name not in spec.components.schemas:
            spec.components.schema(name, schema)
    for rule in app.url_map.iter_rules():
        settings = routes.get(rule.endpoint)
        if settings is None:
            continue
        spec.path(
            path=_VARIABLE.sub(r"{\1}", rule.rule),
            operations=path_item_for(
                settings.limits, rule.endpoint, described=not settings.routing.shared_path
            ),
            parameters=[
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in sorted(rule.arguments)
            ],
            rule=rule,
            view=app.view_functions[rule.endpoint],
            app=app,
        )


#: A Flask rule's variable (``<name>``, ``<converter:name>``), written ``{name}`` in OpenAPI.
_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
