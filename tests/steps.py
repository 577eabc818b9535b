"""The app of the dependency and error-policy tests: ``/step/<name>`` views that record how
they ran (tests/tracking.py), and the steps a test batch is made of."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request

from flask_batch import add_batch_route

from .tracking import Tracker


@dataclass(frozen=True)
class Step:
    """A part of a test batch: its id, its query (?status=500), what it depends on."""

    name: str
    deps: tuple[str, ...] = ()
    query: str = ""


def steps_app(calls: Tracker | None = None, **options: Any) -> Flask:
    """``GET``/``POST /step/<name>`` answers ``{"name": name}`` with the ``status`` of its
    query (a redirect goes to /elsewhere), after waiting as the query asks
    (:meth:`Tracker.hold`); ``calls`` (a new one if None) is the app's ``tracker``."""
    app = Flask(__name__)
    tracker = Tracker() if calls is None else calls
    app.extensions["tracker"] = tracker

    @app.route("/step/<name>", methods=["GET", "POST"])
    def step(name: str) -> Response:
        with tracker.running(name):
            tracker.hold(request.args)
            code = int(request.args.get("status", "200"))
            response = Response(
                json.dumps({"name": name}), status=code, content_type="application/json"
            )
            if 300 <= code < 400:
                response.headers["Location"] = "/elsewhere"
        return response

    add_batch_route(app, **options)
    return app
