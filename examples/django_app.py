"""Django + Flask-Batch: a small todo API whose calls can be batched, in one file.

    python examples/django_app.py          # Django's runserver on http://127.0.0.1:8000
    python examples/django_app.py --demo   # serves on a free port, sends one batch, prints it

The batch endpoint is a WSGI middleware around Django's own application::

    application = BatchMiddleware(get_wsgi_application())     # POST /batch batches

Each part runs through Django's whole middleware stack (sessions, authentication, CSRF...)
as if it had come on its own. Flask is not needed: ``flask_batch.wsgi`` does not import it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django
from batch_demo import TOKEN, curl, show
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from flask_batch.wsgi import BatchMiddleware

settings.configure(
    DEBUG=False,
    SECRET_KEY="flask-batch-example-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    WSGI_APPLICATION=f"{__name__}.application",
)
django.setup()

TODOS: dict[int, dict[str, Any]] = {}


def problem(status: int, detail: str) -> JsonResponse:
    return JsonResponse(
        {"status": status, "detail": detail}, status=status, content_type="application/problem+json"
    )


def todos(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse(list(TODOS.values()), safe=False)
    if request.headers.get("Authorization") != TOKEN:
        return problem(401, "a valid bearer token is required")
    todo = {"id": len(TODOS) + 1, "title": json.loads(request.body)["title"]}
    TODOS[todo["id"]] = todo
    return JsonResponse(todo, status=201)


def todo(request: HttpRequest, todo_id: int) -> HttpResponse:
    if request.method == "DELETE":
        if request.headers.get("Authorization") != TOKEN:
            return problem(401, "a valid bearer token is required")
        TODOS.pop(todo_id, None)
        return HttpResponse(status=204)
    if todo_id not in TODOS:
        return problem(404, f"no todo {todo_id}")
    return JsonResponse(TODOS[todo_id])


urlpatterns = [
    path("todos", csrf_exempt(todos)),
    path("todos/<int:todo_id>", csrf_exempt(todo)),
]


def _application() -> Any:
    from django.core.wsgi import get_wsgi_application  # noqa: PLC0415 (after setup)

    return BatchMiddleware(get_wsgi_application())  # POST /batch now accepts batches


application = _application()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--demo", action="store_true", help="send one batch and stop")
    options = parser.parse_args()
    if not options.demo:
        from django.core.management import execute_from_command_line  # noqa: PLC0415

        print(f"Try:\n  {curl(f'http://127.0.0.1:{options.port}')}")
        execute_from_command_line(
            [sys.argv[0], "runserver", f"127.0.0.1:{options.port}", "--noreload"]
        )
        return
    server = make_server("127.0.0.1", 0, application, handler_class=_Quiet)
    # A short poll interval: shutdown() waits for the serving loop's next look (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        show(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join()


if __name__ == "__main__":
    main()
