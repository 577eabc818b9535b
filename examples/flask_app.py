"""Flask + Flask-Batch: a small todo API whose calls can be batched.

    python examples/flask_app.py          # serves http://127.0.0.1:5000, POST /batch batches
    python examples/flask_app.py --demo   # serves on a free port, sends one batch, prints it

One line, ``add_batch_route(app)``, adds the batch endpoint; no view knows about batching.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from batch_demo import TOKEN, curl, show
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from flask_batch import add_batch_route


def create_app() -> Flask:
    app = Flask(__name__)
    todos: dict[int, dict[str, Any]] = {}

    def problem(status: int, detail: str) -> Response:
        response = jsonify({"status": status, "detail": detail})
        response.status_code = status
        response.mimetype = "application/problem+json"
        return response

    @app.get("/todos")
    def list_todos() -> Response:
        return jsonify(list(todos.values()))

    @app.post("/todos")
    def create_todo() -> Response | tuple[Response, int]:
        if request.headers.get("Authorization") != TOKEN:
            return problem(401, "a valid bearer token is required")
        todo = {"id": len(todos) + 1, "title": (request.get_json(silent=True) or {})["title"]}
        todos[todo["id"]] = todo
        return jsonify(todo), 201

    @app.get("/todos/<int:todo_id>")
    def get_todo(todo_id: int) -> Response:
        if todo_id not in todos:
            return problem(404, f"no todo {todo_id}")
        return jsonify(todos[todo_id])

    @app.delete("/todos/<int:todo_id>")
    def delete_todo(todo_id: int) -> Response | tuple[str, int]:
        if request.headers.get("Authorization") != TOKEN:
            return problem(401, "a valid bearer token is required")
        todos.pop(todo_id, None)
        return "", 204

    add_batch_route(app)  # POST /batch now accepts batches
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--demo", action="store_true", help="send one batch and stop")
    options = parser.parse_args()
    server = make_server("127.0.0.1", 0 if options.demo else options.port, create_app())
    base = f"http://127.0.0.1:{server.server_port}"
    if not options.demo:
        print(f"Serving on {base}; try:\n  {curl(base)}")
        server.serve_forever()
        return
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log in the demo
    # A short poll interval: shutdown() waits for the serving loop's next look (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        show(base)
    finally:
        server.shutdown()
        thread.join()


if __name__ == "__main__":
    main()
