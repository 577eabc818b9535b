"""Django behind flask_batch.wsgi.BatchMiddleware: each part runs through Django's whole
middleware stack, so sessions, authentication and CSRF protection judge every part on its own.

The batch request itself never reaches Django (the middleware answers it), so Django's CSRF
check does not apply to it; it needs none: a cross-site form cannot send ``multipart/mixed``
or ``application/json`` without a CORS preflight. Every unsafe part is checked by Django.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from werkzeug.test import Client

from flask_batch.wire.model import SubRequest, SubResponse
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

from .frameworks import django_site
from .frameworks.driving import BOUNDARY, MULTIPART

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

FORM = ("Content-Type", "application/x-www-form-urlencoded")


def make_app() -> WSGIApplication:
    return django_site.application()


def _batch(client: Client, *requests: SubRequest, **headers: str) -> list[SubResponse]:
    answer = client.post(
        "/batch",
        data=encode_requests(requests, BOUNDARY),
        headers={"Content-Type": MULTIPART, **headers},
    )
    assert answer.status_code == 200, answer.get_data()
    return [response for _, response in read_responses(answer.content_type, answer.get_data())]


def _sub(method: str, target: str, body: bytes = b"", *headers: tuple[str, str]) -> SubRequest:
    return SubRequest(method, target, headers, body)


def _json(response: SubResponse) -> Any:
    return json.loads(response.body)


def _cookie(response: SubResponse, name: str) -> str | None:
    for key, value in response.headers:
        if key.lower() == "set-cookie" and value.startswith(f"{name}="):
            return value.partition(";")[0].partition("=")[2]
    return None


def _session_of(app: WSGIApplication, user: str) -> tuple[Client, str]:
    """A client logged in as ``user`` (directly, not in a batch) and its CSRF token."""
    client = Client(app)
    token = client.get("/accounts/csrf").json["token"]  # type: ignore[index]
    answer = client.post(
        "/accounts/login",
        data={"username": user, "password": django_site.PASSWORD},
        headers={"X-CSRFToken": token},
    )
    assert answer.status_code == 200, answer.get_data()
    # Logging in rotates the CSRF token (and its cookie): the next unsafe request needs the new one.
    return client, client.get("/accounts/csrf").json["token"]  # type: ignore[index]


def test_a_login_in_one_part_does_not_log_in_the_next(app: WSGIApplication) -> None:
    client = Client(app)
    token = client.get("/accounts/csrf").json["token"]  # type: ignore[index]
    form = b"username=alice&password=correct+horse"
    answers = _batch(
        client,
        _sub("POST", "/accounts/login", form, FORM, ("X-CSRFToken", token)),
        _sub("GET", "/accounts/me"),
        _sub("POST", "/accounts/login", form, FORM),  # no CSRF token: Django refuses it
    )
    assert [a.status for a in answers] == [200, 401, 403]
    assert _json(answers[0]) == {"username": "alice"}
    assert _cookie(answers[0], "sessionid")  # the login's cookie goes back to the client
    assert b"CSRF" in answers[2].body


def test_the_batch_session_applies_to_every_part_unless_a_part_brings_its_own(
    app: WSGIApplication,
) -> None:
    client, token = _session_of(app, "alice")
    bob, _ = _session_of(app, "bob")
    bob_session = bob.get_cookie("sessionid")
    assert bob_session is not None
    answers = _batch(
        client,
        _sub("GET", "/accounts/me"),
        _sub("GET", "/accounts/me", b"", ("Cookie", f"sessionid={bob_session.value}")),
        _sub("GET", "/accounts/me", b"", ("Cookie", "sessionid=forged")),
        _sub("POST", "/accounts/notes/", b"text=milk", FORM),
        _sub("POST", "/accounts/notes/", b"text=eggs", FORM, ("X-CSRFToken", token)),
        _sub("GET", "/accounts/notes/"),
        _sub("GET", "/accounts/notes"),  # CommonMiddleware's APPEND_SLASH: redirected
    )
    assert [a.status for a in answers] == [200, 200, 401, 403, 201, 200, 301]
    assert _json(answers[0]) == {"username": "alice", "notes": []}
    assert _json(answers[1]) == {"username": "bob", "notes": []}
    assert _json(answers[4]) == ["eggs"]
    assert _json(answers[5]) == ["eggs"]  # the session store is shared, as for any request
    location = next(v for k, v in answers[6].headers if k.lower() == "location")
    assert location == "/accounts/notes/"


def test_an_outer_csrf_token_applies_to_every_part(app: WSGIApplication) -> None:
    client, token = _session_of(app, "bob")
    answers = _batch(
        client,
        _sub("POST", "/accounts/notes/", b"text=a", FORM),
        _sub("POST", "/accounts/notes/", b"text=b", FORM),
        **{"X-CSRFToken": token},
    )
    assert [a.status for a in answers] == [201, 201]
    assert _json(answers[1]) == ["a", "b"]


def test_a_view_that_raises_is_djangos_500_and_the_batch_goes_on(app: WSGIApplication) -> None:
    django_site.reset()
    answers = _batch(
        Client(app),
        _sub("GET", "/farm/v1/animals/1/crash"),
        _sub("GET", "/farm/v1/animals/1?fields=name"),
        _sub("GET", "/nowhere"),
    )
    assert [a.status for a in answers] == [500, 200, 404]
    assert _json(answers[1]) == {"name": "Molly"}


def test_a_foreign_host_is_refused_by_django_not_by_the_batch(app: WSGIApplication) -> None:
    """Host is the batch's for every part: Django's ALLOWED_HOSTS judges the batch's Host."""
    client = Client(app)
    answers = _batch(client, _sub("GET", "/accounts/me", b"", ("Host", "evil.example")))
    assert answers[0].status == 401  # ran, as localhost
    refused = client.post(
        "/batch",
        data=encode_requests([_sub("GET", "/accounts/me")], BOUNDARY),
        headers={"Content-Type": MULTIPART, "Host": "evil.example"},
    )
    parts = read_responses(refused.content_type, refused.get_data())
    assert parts[0][1].status == 400  # DisallowedHost, from Django itself
