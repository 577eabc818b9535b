"""Nothing leaks between parts: each runs with its own request context, g, session and user."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask, abort, g, request, session

from flask_batch import add_batch_route
from flask_batch.client import Batching

from .batching import batch, header, sub
from .servers import live_server

TOKENS = {"Bearer alice-token": "alice", "Bearer bob-token": "bob"}


def make_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "test"

    @app.before_request
    def load_user() -> None:
        # A current-user pattern as Flask-Login implements it: per request, on g.
        g.user = TOKENS.get(request.headers.get("Authorization", "")) or session.get("user")

    @app.post("/login/<name>")
    def login(name: str) -> dict[str, object]:
        session["user"] = name
        return {"user": name}

    @app.get("/whoami")
    def whoami() -> dict[str, object]:
        if g.user is None:
            abort(401)
        return {"user": g.user, "session": dict(session), "visits": _visit()}

    @app.get("/g")
    def show_g() -> dict[str, object]:
        previous = getattr(g, "note", None)
        g.note = request.args["note"]
        return {"previous": previous}

    def _visit() -> int:
        g.visits = getattr(g, "visits", 0) + 1
        return int(g.visits)

    add_batch_route(app)
    return app


@pytest.fixture
def base(app: Flask) -> Iterator[str]:
    with live_server(app) as url:
        yield url


def test_g_is_fresh_in_every_part(app: Flask) -> None:
    answers = batch(app.test_client(), *(sub("GET", f"/g?note={i}") for i in range(3)))
    assert [json.loads(a.body) for a in answers] == [{"previous": None}] * 3


def test_a_login_in_one_part_does_not_log_in_the_next(app: Flask) -> None:
    login, whoami = batch(app.test_client(), sub("POST", "/login/mallory"), sub("GET", "/whoami"))
    assert login.status == 200
    assert header(login, "Set-Cookie") is not None  # the session goes back to the client
    assert whoami.status == 401


def test_an_outer_session_cookie_reaches_every_part(app: Flask) -> None:
    client = app.test_client()
    client.post("/login/carol")  # the outer request now carries carol's session cookie
    first, second = batch(client, sub("GET", "/whoami"), sub("GET", "/whoami"))
    assert json.loads(first.body)["user"] == json.loads(second.body)["user"] == "carol"
    assert json.loads(first.body)["visits"] == json.loads(second.body)["visits"] == 1


def test_outer_authorization_reaches_every_part_and_a_part_may_override_it(base: str) -> None:
    with Batching(f"{base}/batch") as s:
        s.headers["Authorization"] = "Bearer alice-token"  # on the batch and on every part
        first = s.get(f"{base}/whoami")
        own = s.get(f"{base}/whoami", headers={"Authorization": "Bearer bob-token"})
        third = s.get(f"{base}/whoami")
    assert [r.json()["user"] for r in (first, own, third)] == ["alice", "bob", "alice"]


def test_outer_authorization_alone_authenticates_parts_without_their_own(app: Flask) -> None:
    first, second = batch(
        app.test_client(),
        sub("GET", "/whoami"),
        sub("GET", "/whoami", headers=(("Authorization", "Bearer bob-token"),)),
        headers={"Authorization": "Bearer alice-token"},
    )
    assert json.loads(first.body)["user"] == "alice"
    assert json.loads(second.body)["user"] == "bob"


def test_without_credentials_each_part_is_refused_on_its_own(app: Flask) -> None:
    refused, allowed = batch(
        app.test_client(),
        sub("GET", "/whoami"),
        sub("GET", "/whoami", headers=(("Authorization", "Bearer bob-token"),)),
    )
    assert (refused.status, allowed.status) == (401, 200)
