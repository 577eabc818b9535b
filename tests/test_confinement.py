"""Confinement: a part addresses only this application, as the batch request's origin.

A part cannot reach another origin (absolute-form targets, a ``Host`` override, forwarded
headers behind ``ProxyFix``), cannot address a batch endpoint (no nested batches), cannot
smuggle a second request through its body, and an application cannot inject headers or parts
into the answer. (What a cross-site HTML form can send is refused with 415:
tests/conformance/test_refusals.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, Response, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from flask_batch import add_batch_route
from flask_batch.wire.batch import encode_requests, read_responses
from flask_batch.wire.model import SubResponse

from .batching import BOUNDARY, batch, header, post, problem, sub

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

    @app.route("/admin", methods=["GET", "POST", "DELETE"])
    def admin() -> str:
        return "admin"

    @app.post("/echo")
    def echo() -> Response:
        return Response(request.get_data(), mimetype="application/octet-stream")

    add_batch_route(app)
    return app


@pytest.fixture
def app() -> Flask:
    return make_app()


def body_of(response: SubResponse) -> dict[str, Any]:
    assert response.status == 200, response.body
    document: dict[str, Any] = json.loads(response.body)
    return document


def assert_refused_part(response: SubResponse, words: str) -> None:
    assert response.status == 400
    assert header(response, "Content-Type") == "application/problem+json"
    assert words in json.loads(response.body)["detail"]


# Other origins


@pytest.mark.parametrize(
    "target",
    [
        "http://evil.example/where",
        "https://localhost/where",  # another scheme
        "http://localhost:8080/where",  # another port
        "http://user@localhost/where",  # user info
        "http://user:secret@localhost/where",
        "http://localhost@evil.example/where",
        "http://evil.example#@localhost/where",
        "ftp://localhost/where",
    ],
)
def test_an_absolute_target_on_another_origin_is_a_400_part(app: Flask, target: str) -> None:
    refused, after = batch(app.test_client(), sub("GET", target), sub("GET", "/where"))
    assert refused.status == 400
    assert "cross-origin" in json.loads(refused.body)["title"].lower()
    assert body_of(after)["host"] == "localhost"
    assert app.config["ran"] == ["POST /batch", "GET /where"]


@pytest.mark.parametrize(
    "target", ["http://localhost/where", "HTTP://LOCALHOST/where", "http://localhost:80/where"]
)
def test_an_absolute_target_on_the_batch_origin_runs(app: Flask, target: str) -> None:
    (answer,) = batch(app.test_client(), sub("GET", target))
    assert body_of(answer)["url"] == "http://localhost/where"


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


# No nested batches

INNER = b"--inner\r\nContent-Type: application/http\r\n\r\nDELETE /admin HTTP/1.1\r\n\r\n--inner--"


@pytest.mark.parametrize(
    "target",
    [
        "/batch",
        "/%62atch",
        "/%62%61%74%63%68",
        "/batch/",
        "/%62atch/",
        "/batch?x=1",
        "http://localhost/batch",
        "/batch2",
    ],
)
def test_a_part_cannot_reach_a_batch_endpoint(app: Flask, target: str) -> None:
    add_batch_route(app, "/batch2", "batch2")
    nested, after = batch(
        app.test_client(),
        sub("POST", target, INNER, (("Content-Type", "multipart/mixed; boundary=inner"),)),
        sub("GET", "/where"),
    )
    assert nested.status == 400
    assert header(nested, "Content-Type") == "application/problem+json"
    assert "batch" in json.loads(nested.body)["detail"]
    assert after.status == 200
    assert "DELETE /admin" not in app.config["ran"]


def test_a_get_part_to_the_batch_endpoint_is_also_a_400(app: Flask) -> None:
    (nested,) = batch(app.test_client(), sub("GET", "/batch"))
    assert nested.status == 400  # refused as nested, not answered 405


# Smuggling a request through a body


def test_bytes_after_a_content_length_cannot_become_a_request(app: Flask) -> None:
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiDELETE /admin HTTP/1.1\r\n\r\n"
    answer = post(app.test_client(), part(message) + CLOSE)
    assert answer.status_code == 400
    assert problem(answer)["part"] == 1
    assert app.config["ran"] == ["POST /batch"]


def test_bytes_after_a_chunked_body_cannot_become_a_request(app: Flask) -> None:
    message = (
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhi\r\n0\r\n\r\nDELETE /admin HTTP/1.1\r\n\r\n"
    )
    answer = post(app.test_client(), part(message) + CLOSE)
    assert answer.status_code == 400
    assert problem(answer)["part"] == 1
    assert app.config["ran"] == ["POST /batch"]


def test_a_request_inside_a_body_without_a_length_is_only_a_body(app: Flask) -> None:
    inner = b"DELETE /admin HTTP/1.1\r\nHost: localhost\r\n\r\n"
    (echo,) = batch(app.test_client(), sub("POST", "/echo", inner))
    assert echo.body == inner
    assert "DELETE /admin" not in app.config["ran"]


def test_a_delimiter_inside_a_declared_body_does_not_hide_a_part(app: Flask) -> None:
    # The body claims to run past the next delimiter: the part is cut there, so its
    # Content-Length is a lie, and the whole batch is refused before anything runs.
    hidden = b"\r\n" + part(b"DELETE /admin HTTP/1.1\r\n\r\n")
    message = b"POST /echo HTTP/1.1\r\nContent-Length: " + str(len(hidden)).encode()
    answer = post(app.test_client(), part(message + b"\r\n\r\n" + hidden) + CLOSE)
    assert answer.status_code == 400
    assert problem(answer)["part"] == 1
    assert app.config["ran"] == ["POST /batch"]


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


def test_bodies_that_look_like_delimiters_stay_bodies(app: Flask) -> None:
    payloads = [
        b"\r\n--inner--\r\n",
        b"\r\n--batch_00000000000000000000000000000000--\r\n",
        b"--\r\n--\r\n\n--batch_\n",
    ]
    answers = batch(app.test_client(), *(sub("POST", "/echo", p) for p in payloads))
    assert [a.body for a in answers] == payloads
