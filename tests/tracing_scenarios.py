"""Batches traced by OpenTelemetry's own instrumentations, one scenario per front end.

Each scenario runs in a fresh interpreter (``python -m tests.tracing_scenarios NAME``), as
an instrumented application does: the SDK's tracer provider is set once for the process.
It serves a real application on 127.0.0.1 (uvicorn for FastAPI), sends one batch whose
request continues a client's trace, and prints every finished span as JSON.

The batch: ``GET /items/1`` with no trace headers, ``GET /items/2`` with a ``traceparent``
of its own (:data:`OWN`), ``GET /items/3`` with none.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

#: The client's span, which the batch request continues.
CLIENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#: A part's own trace context.
OWN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BATCH = (
    "--b\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\n"
    "GET /items/1 HTTP/1.1\r\n\r\n"
    "--b\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\n"
    f"GET /items/2 HTTP/1.1\r\ntraceparent: {OWN}\r\n\r\n"
    "--b\r\nContent-Type: application/http\r\nContent-ID: 3\r\n\r\n"
    "GET /items/3 HTTP/1.1\r\n\r\n"
    "--b--\r\n"
)


def send(base: str) -> None:
    answer = requests.post(
        f"{base}/batch",
        data=BATCH.encode(),
        headers={"Content-Type": "multipart/mixed; boundary=b", "traceparent": CLIENT},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.text.count("HTTP/1.1 200") == 3, answer.text


@contextmanager
def wsgi_server(app: Any) -> Iterator[str]:
    from .servers import live_server  # noqa: PLC0415

    with live_server(app) as base:
        yield base


def flask_app(**options: Any) -> Any:
    from flask import Flask  # noqa: PLC0415
    from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: PLC0415

    from flask_batch import add_batch_route  # noqa: PLC0415

    app = Flask(__name__)

    @app.get("/items/<int:k>")
    def item(k: int) -> dict[str, int]:
        return {"k": k}

    add_batch_route(app, **options)
    FlaskInstrumentor().instrument_app(app)  # type: ignore[no-untyped-call]
    return app


def django_item(request: Any, k: int) -> Any:
    from django.http import JsonResponse  # noqa: PLC0415

    return JsonResponse({"k": k})


def __getattr__(name: str) -> Any:
    """``urlpatterns``, for Django's ROOT_URLCONF (this module), once Django is set up."""
    if name == "urlpatterns":
        from django.urls import path  # noqa: PLC0415

        return [path("items/<int:k>", django_item)]
    raise AttributeError(name)


def django_app(outer_middleware: bool) -> Any:
    import django  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415
    from opentelemetry.instrumentation.django import DjangoInstrumentor  # noqa: PLC0415

    from flask_batch.wsgi import BatchMiddleware  # noqa: PLC0415

    settings.configure(
        DEBUG=False,
        SECRET_KEY="flask-batch-tests-only",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF="tests.tracing_scenarios",
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        LOGGING_CONFIG=None,
    )
    django.setup()
    DjangoInstrumentor().instrument()
    from django.core.wsgi import get_wsgi_application  # noqa: PLC0415

    app = BatchMiddleware(get_wsgi_application())
    if outer_middleware:
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware  # noqa: PLC0415

        return OpenTelemetryMiddleware(app)
    return app


@contextmanager
def fastapi_server() -> Iterator[str]:
    import uvicorn  # noqa: PLC0415
    from fastapi import FastAPI  # noqa: PLC0415
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor  # noqa: PLC0415

    from flask_batch.asgi import BatchMiddleware  # noqa: PLC0415

    app = FastAPI()

    @app.get("/items/{k}")
    async def item(k: int) -> dict[str, int]:
        return {"k": k}

    FastAPIInstrumentor.instrument_app(app)
    config = uvicorn.Config(BatchMiddleware(app), host="127.0.0.1", port=0, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


SCENARIOS: dict[str, Callable[[], Any]] = {
    "flask": lambda: wsgi_server(flask_app()),
    "flask-parallel": lambda: wsgi_server(flask_app(max_workers=4, max_workers_per_request=4)),
    "django": lambda: wsgi_server(django_app(outer_middleware=False)),
    "django-wsgi-middleware": lambda: wsgi_server(django_app(outer_middleware=True)),
    "fastapi": fastapi_server,
}


def described(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    attributes = span.attributes or {}
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace": f"{context.trace_id:032x}",
        "span": f"{context.span_id:016x}",
        "parent": f"{span.parent.span_id:016x}" if span.parent else None,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "path": attributes.get("url.path") or attributes.get("http.target"),
    }


def main(name: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    with SCENARIOS[name]() as base:
        send(base)
        # A server span ends once its answer is sent, which the client may not wait for.
        wanted = {"/batch", "/items/1", "/items/2", "/items/3"}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            spans = [described(span) for span in exporter.get_finished_spans()]
            if wanted <= {span["path"] for span in spans}:
                break
            time.sleep(0.01)
    print(json.dumps(spans))


if __name__ == "__main__":
    main(sys.argv[1])
