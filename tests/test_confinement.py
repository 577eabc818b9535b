"""Confinement on a Flask app: a part sees the batch request's origin (its host and scheme,
``url_for`` included, and behind ``ProxyFix`` the origin the proxy vouched for), and an
application cannot inject headers or parts into the answer.

What every front end confines alike (targets on other origins, nested batches, smuggled
requests, pinned headers) is asserted in tests/conformance/test_confinement.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from flask_batch import add_batch_route
from flask_batch.wire.model import SubResponse
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

from .batching import BOUNDARY, batch, header, post, sub

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CLOSE = f"--{BOUNDARY}--\r\n".encode()


def part(message: bytes) -> bytes:
    return f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\n".encode() + message + b"\r\n"


def make_app() -> Flask:
    app = Flask(__name__)
    ran: list[str] = []
    app.config["ran"] = ran

    @app.before_request
    def record() -> None:
        ran.append(f"{request.method} {request.path}")

    @app.get("/where")
    def where() -> dict[str, object]:
        return {
            "host": request.host,
            "scheme": request.scheme,
            "remote_addr": request.remote_addr,
            "script_root": request.script_root,
            "url": request.url,
            "external": url_for("where", _external=True),
        }

    add_batch_route(app)
    return app


def body_of(response: SubResponse) -> dict[str, Any]:
    assert response.status == 200, response.body
    document: dict[str, Any] = json.loads(response.body)
    return document


def assert_refused_part(response: SubResponse, words: str) -> None:
    assert response.status == 400
    assert header(response, "Content-Type") == "application/problem+json"
    assert words in json.loads(response.body)["detail"]


@pytest.mark.parametrize("own", [("Host", "evil.example"), ("Host", "localhost:9999")])
def test_a_part_cannot_change_the_host_it_sees(app: Flask, own: tuple[str, str]) -> None:
    (answer,) = batch(app.test_client(), sub("GET", "/where", headers=(own,)))
    seen = body_of(answer)
    assert (seen["host"], seen["external"]) == ("localhost", "http://localhost/where")


def assert_pinned(answer: SubResponse, name: str) -> None:
    """``answer`` refuses a part that sent the pinned header ``name``."""
    assert answer.status == 400
    document = json.loads(answer.body)
    assert document["title"] == "Pinned header"
    assert name in document["detail"]


def test_a_part_sees_the_host_of_the_batch_request(app: Flask) -> None:
    (answer,) = batch(
        app.test_client(),
        sub("GET", "/where", headers=(("Host", "evil.example"),)),
        base_url="https://api.example.com:8443",
    )
    seen = body_of(answer)
    assert seen["external"] == "https://api.example.com:8443/where"
    assert seen["scheme"] == "https"


# Behind a reverse proxy: ProxyFix computes the outer request's origin once; parts inherit it

PROXY = {
    "X-Forwarded-Host": "api.example.com",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.7",
}
FORGED = (
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "http"),
    ("X-Forwarded-For", "198.51.100.66"),
)


@pytest.fixture
def proxied() -> Flask:
    app = make_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    return app


def test_behind_proxyfix_parts_inherit_the_proxied_origin(proxied: Flask) -> None:
    (answer,) = batch(proxied.test_client(), sub("GET", "/where"), headers=PROXY)
    seen = body_of(answer)
    assert seen["external"] == "https://api.example.com/where"
    assert seen["remote_addr"] == "203.0.113.7"


def test_behind_proxyfix_a_part_cannot_forge_forwarded_headers(proxied: Flask) -> None:
    # The proxy vouched for the batch request's X-Forwarded-* headers; a part's own are
    # written by the client, inside a body the proxy never looked at: the part is refused.
    forged, inherited = batch(
        proxied.test_client(),
        sub("GET", "/where", headers=FORGED),
        sub("GET", "/where"),
        headers=PROXY,
    )
    assert_pinned(forged, "X-Forwarded-Host")
    seen = body_of(inherited)
    assert (seen["host"], seen["scheme"]) == ("api.example.com", "https")
    assert seen["external"] == "https://api.example.com/where"
    assert seen["remote_addr"] == "203.0.113.7"
    assert proxied.config["ran"] == ["POST /batch", "GET /where"]


def test_with_proxyfix_around_the_whole_app_a_part_cannot_forge_forwarded_headers() -> None:
    # ProxyFix outside Flask (``app = ProxyFix(app)``): parts run through app.wsgi_app, behind
    # it, and still see the origin it computed for the batch request.
    app = make_app()

    @app.get("/forwarded")
    def forwarded() -> dict[str, object]:
        return {"host": request.headers.get("X-Forwarded-Host")}

    client = Client(ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1))
    requests = [sub("GET", "/where", headers=FORGED), sub("GET", "/forwarded", headers=FORGED)]
    answer = client.post(
        "/batch",
        data=encode_requests(requests, BOUNDARY),
        headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}", **PROXY},
    )
    assert answer.status_code == 200
    (_, where), (_, seen) = read_responses(answer.headers["Content-Type"], answer.get_data())
    assert_pinned(where, "X-Forwarded-Host")
    assert_pinned(seen, "X-Forwarded-Host")
    assert app.config["ran"] == ["POST /batch"]


def test_behind_proxyfix_a_part_cannot_forge_a_prefix() -> None:
    app = make_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1, x_prefix=1)  # type: ignore[method-assign]
    forged, inherited = batch(
        app.test_client(),
        sub("GET", "/api/where", headers=(("X-Forwarded-Prefix", "/evil"),)),
        sub("GET", "/api/where"),
        headers={**PROXY, "X-Forwarded-Prefix": "/api"},
    )
    assert_pinned(forged, "X-Forwarded-Prefix")
    seen = body_of(inherited)
    assert seen["script_root"] == "/api"
    assert seen["external"] == "https://api.example.com/api/where"


def test_behind_proxyfix_absolute_targets_are_judged_against_the_proxied_origin(
    proxied: Flask,
) -> None:
    public, internal = batch(
        proxied.test_client(),
        sub("GET", "https://api.example.com/where"),
        sub("GET", "http://localhost/where"),  # the address the proxy talks to
        headers=PROXY,
    )
    assert body_of(public)["external"] == "https://api.example.com/where"
    assert_refused_part(internal, "api.example.com")


# Nothing the application answers can inject headers or parts


def _raw(status: str, headers: list[tuple[str, str]], body: bytes = b"x") -> Flask:
    app = make_app()
    inner = app.wsgi_app

    def raw(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/raw":
            start_response(status, headers)
            return [body]
        return inner(environ, start_response)

    app.wsgi_app = raw  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("200 OK", [("X-Evil", "a\r\nSet-Cookie: admin=1")]),
        ("200 OK", [("X-Evil", "a\nSet-Cookie: admin=1")]),
        ("200 OK", [("X-Evil", "a\rSet-Cookie: admin=1")]),
        ("200 OK", [("X-Evil", "a\x00b")]),
        ("200 OK", [("X-Evil", "snowman \u2603")]),  # not Latin-1: cannot be sent
        ("200 OK", [("X-Evil\r\nSet-Cookie", "admin=1")]),
        ("200 OK", [("X Evil", "1")]),
        ("200 OK\r\nSet-Cookie: admin=1", []),
        ("2000 Huge", []),
    ],
)
def test_an_unframeable_response_becomes_a_500_part(
    status: str, headers: list[tuple[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    app = _raw(status, headers)
    answer = post(
        app.test_client(),
        part(b"GET /raw HTTP/1.1\r\n\r\n") + part(b"GET /where HTTP/1.1\r\n\r\n") + CLOSE,
    )
    assert answer.status_code == 200
    assert b"admin=1" not in answer.get_data()
    assert b"Set-Cookie" not in answer.get_data()
    raw, after = batch(app.test_client(), sub("GET", "/raw"), sub("GET", "/where"))
    assert raw.status == 500
    assert header(raw, "Content-Type") == "application/problem+json"
    assert body_of(after)["host"] == "localhost"


def test_a_lying_content_length_cannot_swallow_or_fake_parts() -> None:
    fake = (
        b"short\r\n--batch_0\r\nContent-Type: application/http\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfake\r\n"
    )
    for length in ("1", "100000"):
        app = _raw("200 OK", [("Content-Length", length), ("Transfer-Encoding", "chunked")], fake)
        raw, after = batch(app.test_client(), sub("GET", "/raw"), sub("GET", "/where"))
        assert raw.body == fake
        assert header(raw, "Content-Length") == str(len(fake))
        assert header(raw, "Transfer-Encoding") is None  # hop-by-hop: not the part's business
        assert body_of(after)["host"] == "localhost"
