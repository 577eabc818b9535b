"""Real auth extensions judge every part on its own: Flask-Login, Flask-Limiter, Flask-WTF.

A part inherits the batch request's ``Cookie`` and ``Authorization`` unless it brings its own;
nothing a part does (log in, log out, write the session, set ``g``) changes what the next part
sees; a rate limit counts every part; CSRF protection checks every part.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask, Response, abort, g, request, session
from flask.testing import FlaskClient
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFProtect, generate_csrf
from werkzeug.test import TestResponse

from flask_batch import add_batch_route
from flask_batch.client import Batching
from flask_batch.wire.model import SubResponse

from .batching import batch, header, post, sub
from .login import User, install_login
from .servers import live_server

USERS = ("alice", "bob")
# Flask-Login


def make_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "login-tests"
    install_login(app, USERS)

    @app.before_request
    def touch_user() -> None:
        # Load the user on every request, the batch request included, so that an identity
        # loaded for the batch would be there to leak if parts shared its context.
        g.seen_user = current_user.get_id() if current_user.is_authenticated else None

    @app.post("/login/<name>")
    def login(name: str) -> dict[str, object]:
        if name not in USERS and name != "mallory":
            abort(404)
        login_user(User(name))
        return {"user": name}

    @app.post("/logout")
    def logout() -> dict[str, object]:
        logout_user()
        return {"user": None}

    def me() -> dict[str, object]:
        return {"user": current_user.get_id()}

    app.get("/me")(login_required(me))

    @app.get("/mark")
    def mark() -> dict[str, object]:
        seen = {"g": getattr(g, "mark", None), "session": session.get("mark")}
        g.mark = session["mark"] = request.args["value"]
        return seen

    add_batch_route(app)
    return app


def users(answers: list[SubResponse]) -> list[str | int]:
    """Who each part was: the user name, or the status of a refused part."""
    return [json.loads(a.body)["user"] if a.status == 200 else a.status for a in answers]


def session_cookie(app: Flask, name: str) -> str:
    """The session cookie of ``name`` logged in with a client of its own."""
    client = app.test_client()
    assert client.post(f"/login/{name}").status_code == 200
    cookie = client.get_cookie("session")
    assert cookie is not None
    return f"session={cookie.value}"


def test_a_logged_in_batch_authenticates_the_parts_that_inherit_its_cookie(app: Flask) -> None:
    client = app.test_client()
    client.post("/login/alice")  # the batch request now carries alice's session cookie
    answers = batch(client, sub("GET", "/me"), sub("GET", "/me"), sub("GET", "/me"))
    assert users(answers) == ["alice", "alice", "alice"]


def test_without_a_login_every_part_is_refused_on_its_own(app: Flask) -> None:
    assert users(batch(app.test_client(), sub("GET", "/me"), sub("GET", "/me"))) == [401, 401]


def test_a_part_that_overrides_cookie_is_judged_on_its_own(app: Flask) -> None:
    client = app.test_client()
    client.post("/login/alice")
    answers = batch(
        client,
        sub("GET", "/me"),
        sub("GET", "/me", headers=(("Cookie", session_cookie(app, "bob")),)),
        sub("GET", "/me", headers=(("Cookie", "session=forged.value.here"),)),
        sub("GET", "/me", headers=(("Cookie", "other=1"),)),
        sub("GET", "/me"),
    )
    assert users(answers) == ["alice", "bob", 401, 401, "alice"]


def test_a_part_that_overrides_authorization_is_judged_on_its_own(app: Flask) -> None:
    answers = batch(
        app.test_client(),
        sub("GET", "/me"),
        sub("GET", "/me", headers=(("Authorization", "Bearer bob-token"),)),
        sub("GET", "/me", headers=(("Authorization", "Bearer stolen"),)),
        sub("GET", "/me"),
        headers={"Authorization": "Bearer alice-token"},
    )
    assert users(answers) == ["alice", "bob", 401, "alice"]


def test_a_part_that_logs_in_does_not_change_the_next_parts_identity(app: Flask) -> None:
    anonymous = batch(app.test_client(), sub("POST", "/login/mallory"), sub("GET", "/me"))
    assert anonymous[0].status == 200
    assert header(anonymous[0], "Set-Cookie") is not None  # the login goes back to the client
    assert anonymous[1].status == 401

    client = app.test_client()
    client.post("/login/alice")
    answers = batch(client, sub("GET", "/me"), sub("POST", "/login/mallory"), sub("GET", "/me"))
    assert users(answers) == ["alice", "mallory", "alice"]


def test_a_part_that_logs_out_does_not_change_the_next_parts_identity(app: Flask) -> None:
    client = app.test_client()
    client.post("/login/alice")
    answers = batch(client, sub("POST", "/logout"), sub("GET", "/me"))
    assert answers[0].status == 200
    assert users(answers[1:]) == ["alice"]
    assert [r.status for r in batch(client, sub("GET", "/me"))] == [200]  # still logged in


def test_g_and_session_are_fresh_in_every_part(app: Flask) -> None:
    answers = batch(app.test_client(), *(sub("GET", f"/mark?value={i}") for i in range(3)))
    assert [json.loads(a.body) for a in answers] == [{"g": None, "session": None}] * 3


def test_every_part_starts_from_the_batch_requests_session(app: Flask) -> None:
    client = app.test_client()
    client.get("/mark?value=outer")
    answers = batch(client, sub("GET", "/mark?value=1"), sub("GET", "/mark?value=2"))
    assert [json.loads(a.body) for a in answers] == [{"g": None, "session": "outer"}] * 2


def test_a_login_in_a_batch_reaches_the_client_for_its_next_batch(app: Flask) -> None:
    with live_server(app) as base:
        with Batching(f"{base}/batch") as s:
            login = s.post(f"{base}/login/bob")
            before = s.get(f"{base}/me")
        assert (login.status_code, before.status_code) == (200, 401)
        with s:  # the session cookie of the login part is now in the client's jar
            after = s.get(f"{base}/me")
        assert after.json() == {"user": "bob"}


# Flask-Limiter


@pytest.fixture
def limited() -> Iterator[Flask]:
    app = Flask(__name__)
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=True)

    @app.get("/ping")
    @limiter.limit("3 per minute")
    def ping() -> str:
        return "pong"

    add_batch_route(app)
    yield app
    limiter.reset()


def test_a_rate_limit_counts_every_part(limited: Flask) -> None:
    answers = batch(limited.test_client(), *(sub("GET", "/ping") for _ in range(5)))
    assert [a.status for a in answers] == [200, 200, 200, 429, 429]
    assert [header(a, "X-RateLimit-Remaining") for a in answers[:3]] == ["2", "1", "0"]
    assert all(header(a, "Retry-After") is not None for a in answers[3:])


def test_parts_and_single_requests_share_one_count(limited: Flask) -> None:
    client = limited.test_client()
    assert [client.get("/ping").status_code for _ in range(2)] == [200, 200]
    answers = batch(client, sub("GET", "/ping"), sub("GET", "/ping"))
    assert [a.status for a in answers] == [200, 429]
    assert client.get("/ping").status_code == 429
    assert [a.status for a in batch(client, sub("GET", "/ping"))] == [429]


def test_a_part_cannot_escape_the_limit_with_forwarded_headers(limited: Flask) -> None:
    # A part that claims another client address is refused (the header is pinned to the
    # batch request's); the others are counted against the batch's one client.
    forged = (sub("GET", "/ping", headers=(("X-Forwarded-For", f"10.0.0.{i}"),)) for i in range(2))
    answers = batch(limited.test_client(), *forged, *(sub("GET", "/ping") for _ in range(5)))
    assert [a.status for a in answers] == [400, 400, 200, 200, 200, 429, 429]


def test_an_application_wide_limit_counts_the_batch_and_each_part() -> None:
    app = Flask(__name__)
    limiter = Limiter(
        get_remote_address, app=app, storage_uri="memory://", application_limits=["5 per minute"]
    )
    app.route("/ping")(lambda: "pong")
    add_batch_route(app)
    try:
        answers = batch(app.test_client(), *(sub("GET", "/ping") for _ in range(5)))
        # The batch request itself was the first of the five.
        assert [a.status for a in answers] == [200, 200, 200, 200, 429]
        assert post(app.test_client(), b"").status_code == 429  # the next batch too
    finally:
        limiter.reset()


# Flask-WTF


def csrf_app(*, exempt_batch: bool) -> Flask:
    app = Flask(__name__)
    app.secret_key = "csrf-tests"
    csrf = CSRFProtect(app)
    transfers: list[str] = []
    app.config["transfers"] = transfers

    @app.get("/token")
    def token() -> dict[str, object]:
        return {"token": generate_csrf()}

    @app.get("/balance")
    def balance() -> dict[str, object]:
        return {"transfers": len(transfers)}

    @app.post("/transfer")
    def transfer() -> Response:
        transfers.append(request.args["to"])
        return Response("done")

    add_batch_route(app)
    if exempt_batch:
        # A batch is multipart/mixed, which no cross-site form can send; each part is checked.
        csrf.exempt(app.view_functions["batch"])
    return app


def csrf_token(app: Flask) -> tuple[FlaskClient, str, str]:
    """A client whose session holds a CSRF token, the token, and that session's cookie:
    what a browser has after loading a page with a form."""
    client = app.test_client()
    token = client.get("/token").get_json()["token"]
    cookie = client.get_cookie("session")
    assert cookie is not None
    return client, token, f"session={cookie.value}"


def csrf_refusal(response: SubResponse) -> str:
    assert response.status == 400
    return response.body.decode()


def test_csrf_judges_each_part() -> None:
    app = csrf_app(exempt_batch=True)
    client, token, _ = csrf_token(app)
    _, other_token, other_cookie = csrf_token(app)
    answers = batch(
        client,
        sub("POST", "/transfer?to=a", headers=(("X-CSRFToken", token),)),
        sub("POST", "/transfer?to=b"),
        sub("POST", "/transfer?to=c", headers=(("X-CSRFToken", "forged"),)),
        sub("POST", "/transfer?to=d", headers=(("X-CSRFToken", other_token),)),
        sub("POST", "/transfer?to=e", headers=(("X-CSRFToken", token), ("Cookie", other_cookie))),
        sub("GET", "/balance"),
    )
    assert answers[0].status == 200
    assert "The CSRF token is missing." in csrf_refusal(answers[1])
    assert "The CSRF token is invalid." in csrf_refusal(answers[2])
    assert "The CSRF tokens do not match." in csrf_refusal(answers[3])
    assert "The CSRF tokens do not match." in csrf_refusal(answers[4])
    assert json.loads(answers[5].body) == {"transfers": 1}
    assert app.config["transfers"] == ["a"]


def test_a_protected_batch_request_needs_the_token_and_passes_it_to_its_parts() -> None:
    app = csrf_app(exempt_batch=False)
    client, token, _ = csrf_token(app)
    answers = batch(
        client,
        sub("POST", "/transfer?to=a"),
        sub("POST", "/transfer?to=b"),
        sub("POST", "/transfer?to=c", headers=(("X-CSRFToken", "forged"),)),
        headers={"X-CSRFToken": token},
    )
    assert [a.status for a in answers] == [200, 200, 400]
    assert app.config["transfers"] == ["a", "b"]

    refused: TestResponse = post(
        client,
        b"--test-boundary\r\nContent-Type: application/http\r\n\r\n"
        b"POST /transfer?to=z HTTP/1.1\r\n\r\n--test-boundary--\r\n",
    )
    assert refused.status_code == 400
    assert "The CSRF token is missing." in refused.get_data(as_text=True)
    assert app.config["transfers"] == ["a", "b"]
