"""A part reaches only this application, with the identity of the batch request.

Targets that name another origin, no HTTP resource at all, or a batch route (no nested
batches), and headers that the proxies in front of the application vouch for (pinned
headers) are refused part by part with a ``400``, on every front end alike; nothing runs for
the refused part, the rest of the batch goes on. No request is smuggled through a part's body.
"""

from __future__ import annotations

import json

import pytest

from flask_batch.part_headers import PINNED_HEADERS
from flask_batch.wire.json_requests import encode_json_requests
from flask_batch.wire.model import SubResponse, first_header

from ..batching import sub
from .api import ROUTES
from .conftest import Server
from .wire import CLOSE, batch, body, part, post


def refused_part(answer: SubResponse, title: str) -> str:
    """Check ``answer`` is a 400 problem part titled ``title``; its detail."""
    assert answer.status == 400, answer
    assert first_header(answer.headers, "Content-Type") == "application/problem+json"
    document = json.loads(answer.body)
    assert document["title"] == title, document
    return str(document["detail"])


def inspected(answer: SubResponse) -> dict[str, str]:
    assert answer.status == 200, answer
    headers: dict[str, str] = json.loads(answer.body)["headers"]
    return headers


# Targets


@pytest.mark.parametrize(
    "target",
    [
        "https:/ok",  # a scheme without "//": not this origin's absolute-form
        "http:/ok",
        "ftp:/ok",
        "file:/etc/passwd",
        "javascript:alert(1)",
        "127.0.0.1:80",  # authority-form
        "[::1]:443",
        "localhost:443",
    ],
)
def test_a_target_naming_no_http_resource_of_this_origin_is_refused(
    server: Server, target: str
) -> None:
    refused, after = batch(server.base, "/batch", sub("GET", target), sub("GET", "/ok"))
    assert "target" in refused_part(refused, "Invalid request target")
    assert after.status == 200
    assert server.ran == ["GET /ok"]


@pytest.mark.parametrize(
    ("target", "title", "words"),
    [
        ("*", "Unsupported request target", "asterisk-form"),
        ("http://[::1/ok", "Invalid request target", "IPv6"),  # an unclosed IPv6 literal
    ],
)
def test_an_asterisk_or_unparsable_target_is_refused(
    server: Server, target: str, title: str, words: str
) -> None:
    refused, after = batch(server.base, "/batch", sub("GET", target), sub("GET", "/ok"))
    assert words in refused_part(refused, title)
    assert after.status == 200
    assert server.ran == ["GET /ok"]


def test_connect_is_refused(server: Server) -> None:
    port = server.base.rsplit(":", 1)[1]
    refused, after = batch(
        server.base, "/batch", sub("CONNECT", f"127.0.0.1:{port}"), sub("CONNECT", "/ok")
    )
    for answer in (refused, after):
        assert "tunnel" in refused_part(answer, "Unsupported method")
    assert server.ran == []


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/ok",  # a network-path reference: another origin
        "file:///etc/passwd",
        "ftp://127.0.0.1:{port}/ok",
        "//evil.example:{port}/ok",
        "http://127.0.0.1:{port}:80/ok",  # not a host and a port
        "http://127.0.0.1:{port}@evil.example/ok",
        "http://evil.example/ok",
        "https://127.0.0.1:{port}/ok",
        "http://127.0.0.1:1{port}/ok",
        "http://user@127.0.0.1:{port}/ok",  # user info
        "http://user:secret@127.0.0.1:{port}/ok",
        "http://evil.example#@127.0.0.1:{port}/ok",
    ],
)
def test_a_target_on_another_origin_is_refused(server: Server, target: str) -> None:
    port = server.base.rsplit(":", 1)[1]
    refused, after = batch(
        server.base, "/batch", sub("GET", target.format(port=port)), sub("GET", "/ok")
    )
    refused_part(refused, "Cross-origin sub-request")
    assert after.status == 200
    assert server.ran == ["GET /ok"]


@pytest.mark.parametrize(
    "target", ["http://127.0.0.1:{port}/ok", "//127.0.0.1:{port}/ok", "HTTP://127.0.0.1:{port}/ok"]
)
def test_a_target_on_this_origin_runs(server: Server, target: str) -> None:
    port = server.base.rsplit(":", 1)[1]
    (answer,) = batch(server.base, "/batch", sub("GET", target.format(port=port)))
    assert (answer.status, answer.body) == (200, b"ok")
    assert server.ran == ["GET /ok"]


@pytest.mark.parametrize(
    "target",
    ["http://localhost/inspect", "HTTP://LOCALHOST/inspect", "http://localhost:80/inspect"],
)
def test_the_default_port_names_the_batch_origin_too(server: Server, target: str) -> None:
    (answer,) = batch(server.base, "/batch", sub("GET", target), headers=[("Host", "localhost")])
    seen = json.loads(answer.body)
    assert (answer.status, seen["path"], seen["headers"]["host"]) == (200, "/inspect", "localhost")


@pytest.mark.parametrize(
    ("url", "title"),
    [
        ("//evil.example/ok", "Cross-origin sub-request"),
        ("https:/ok", "Invalid request target"),
        ("file:/etc/passwd", "Invalid request target"),
    ],
)
def test_json_urls_are_confined_alike(server: Server, url: str, title: str) -> None:
    requests = [sub("GET", url, content_id="1"), sub("GET", "/ok", content_id="2")]
    document = encode_json_requests(requests)
    refused, after = post(server.base, "/batch", document, "application/json").parts()
    refused_part(refused, title)
    assert after.status == 200
    assert server.ran == ["GET /ok"]


# No nested batches

#: A batch as a part's body: it deletes if it ever runs.
INNER = b"--inner\r\nContent-Type: application/http\r\n\r\nDELETE /ok HTTP/1.1\r\n\r\n--inner--"
INNER_TYPE = (("Content-Type", "multipart/mixed; boundary=inner"),)
NESTED = "a batch cannot contain another batch"


@pytest.mark.parametrize(
    "target",
    [
        "/batch",
        "/%62atch",
        "/%62%61%74%63%68",
        "/batch/",
        "/%62atch/",
        "/batch?x=1",
        "http://127.0.0.1:{port}/batch",
        "//127.0.0.1:{port}/batch?x",
    ],
)
def test_a_part_cannot_reach_its_own_batch_route(server: Server, target: str) -> None:
    port = server.base.rsplit(":", 1)[1]
    nested, after = batch(
        server.base,
        "/batch",
        sub("POST", target.format(port=port), INNER, INNER_TYPE),
        sub("GET", "/ok"),
    )
    assert refused_part(nested, "Nested batch") == NESTED
    assert after.status == 200
    assert server.ran == ["GET /ok"]


def test_a_get_part_to_its_own_batch_route_is_refused_not_described(server: Server) -> None:
    (nested,) = batch(server.base, "/batch", sub("GET", "/batch"))
    assert refused_part(nested, "Nested batch") == NESTED


#: The last route's middleware wraps the others' in the WSGI and ASGI stacks (api.py), so its
#: parts pass every other batch route; on the Flask app every route sees every part.
OUTERMOST = list(ROUTES)[-1]


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("route", ["/batch", "/batch/small"])
def test_a_part_cannot_reach_another_batch_route(server: Server, method: str, route: str) -> None:
    nested, after = batch(
        server.base,
        OUTERMOST,
        sub(method, route, INNER if method == "POST" else b"", INNER_TYPE),
        sub("GET", "/ok"),
    )
    assert refused_part(nested, "Malformed batch") == NESTED  # refused by that route itself
    assert after.status == 200
    assert server.ran == ["GET /ok"]


# Smuggling a request through a body


def test_bytes_after_a_content_length_cannot_become_a_request(server: Server) -> None:
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiDELETE /ok HTTP/1.1\r\n\r\n"
    assert server.refused(body(message))["part"] == 1


def test_bytes_after_a_chunked_body_cannot_become_a_request(server: Server) -> None:
    message = (
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhi\r\n0\r\n\r\nDELETE /ok HTTP/1.1\r\n\r\n"
    )
    assert server.refused(body(message))["part"] == 1


def test_a_request_inside_a_body_without_a_length_is_only_a_body(server: Server) -> None:
    inner = b"DELETE /ok HTTP/1.1\r\nHost: localhost\r\n\r\n"
    (echo,) = batch(server.base, "/batch", sub("POST", "/echo", inner))
    assert echo.body == inner
    assert server.ran == ["POST /echo"]


def test_a_delimiter_inside_a_declared_body_does_not_hide_a_part(server: Server) -> None:
    # The body claims to run past the next delimiter: the part is cut there, so its
    # Content-Length is a lie, and the whole batch is refused before anything runs.
    hidden = b"\r\n" + part(b"DELETE /ok HTTP/1.1\r\n\r\n")
    message = b"POST /echo HTTP/1.1\r\nContent-Length: " + str(len(hidden)).encode()
    assert server.refused(part(message + b"\r\n\r\n" + hidden) + CLOSE)["part"] == 1


def test_bodies_that_look_like_delimiters_stay_bodies(server: Server) -> None:
    payloads = [
        b"\r\n--inner--\r\n",
        b"\r\n--batch_00000000000000000000000000000000--\r\n",
        b"--\r\n--\r\n\n--batch_\n",
    ]
    answers = batch(server.base, "/batch", *(sub("POST", "/echo", p) for p in payloads))
    assert [a.body for a in answers] == payloads


# Headers


#: One header of each family :data:`PINNED_HEADERS` covers, as a part might forge it.
FORGED = [
    ("Forwarded", "for=198.51.100.1;host=evil.example"),
    ("X-Forwarded-For", "198.51.100.1"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-User", "admin"),
    ("X-Forwarded-Email", "admin@example.com"),
    ("X-Real-IP", "198.51.100.1"),
    ("CF-Connecting-IP", "198.51.100.1"),
    ("True-Client-IP", "198.51.100.1"),
    ("Fastly-Client-IP", "198.51.100.1"),
    ("X-Client-IP", "198.51.100.1"),
    ("X-Cluster-Client-IP", "198.51.100.1"),
    ("Remote-User", "admin"),
    ("X-Remote-User", "admin"),
    ("X-Auth-Request-User", "admin"),
    ("X-Auth-Request-Email", "admin@example.com"),
    ("X-Auth-Request-Groups", "admins"),
    ("X-Goog-Authenticated-User-Email", "accounts.google.com:admin@example.com"),
    ("X-Goog-Authenticated-User-Id", "accounts.google.com:1"),
    ("X-MS-Client-Principal", "e30="),
    ("X-MS-Client-Principal-Name", "admin"),
    ("X-MS-Client-Principal-Id", "1"),
    ("X-Amzn-Oidc-Identity", "admin"),
    ("X-Amzn-Oidc-Data", "e30"),
    ("X-AppEngine-Cron", "true"),
    ("Cf-Access-Authenticated-User-Email", "admin@example.com"),
    ("X-SSL-Client-Verify", "SUCCESS"),
    ("x-auth-request-user", "admin"),  # any case
    ("REMOTE-USER", "admin"),
]


@pytest.mark.parametrize(("name", "value"), FORGED)
def test_a_part_that_forges_a_pinned_header_is_refused(
    server: Server, name: str, value: str
) -> None:
    forged, honest = batch(
        server.base,
        "/batch",
        sub("GET", "/inspect", headers=((name, value),)),
        sub("GET", "/inspect"),
        headers=[(name, "the proxy's value")],
    )
    assert name in refused_part(forged, "Pinned header")
    # Every part inherits the batch request's value: the proxy's.
    assert inspected(honest)[name.lower()] == "the proxy's value"
    assert server.ran == ["GET /inspect"]


def test_every_default_pattern_is_documented() -> None:
    with open("docs/security.md", encoding="utf-8") as page:
        text = page.read()
    missing = [pattern for pattern in PINNED_HEADERS if f"`{pattern}`" not in text]
    assert missing == []


def test_a_route_pins_its_own_names_and_patterns(server: Server) -> None:
    tenant, internal, other = batch(
        server.base,
        "/batch/pinned",
        sub("GET", "/inspect", headers=(("X-Tenant", "other"),)),
        sub("GET", "/inspect", headers=(("X-Internal-Role", "admin"),)),
        sub("GET", "/inspect", headers=(("X-Other", "mine"), ("Remote-User", "admin"))),
        headers=[("X-Tenant", "mine")],
    )
    assert "X-Tenant" in refused_part(tenant, "Pinned header")
    assert "X-Internal-Role" in refused_part(internal, "Pinned header")
    assert "Remote-User" in refused_part(other, "Pinned header")  # the defaults still hold
    assert server.ran == []
    (allowed,) = batch(server.base, "/batch", sub("GET", "/inspect", headers=(("X-Tenant", "b"),)))
    assert inspected(allowed)["x-tenant"] == "b"  # pinned on /batch/pinned only


def test_a_part_may_send_its_own_credentials_and_ordinary_headers(server: Server) -> None:
    (answer,) = batch(
        server.base,
        "/batch",
        sub(
            "GET",
            "/inspect",
            headers=(
                ("Authorization", "Bearer mine"),
                ("Cookie", "session=mine"),
                ("Accept", "application/json"),
                ("X-Forwarded", "not the family"),
                ("X-Remote-Username-Hint", "not pinned"),
            ),
        ),
        headers=[("Authorization", "Bearer batch"), ("Cookie", "session=batch")],
    )
    seen = inspected(answer)
    assert seen["authorization"] == "Bearer mine"
    assert seen["cookie"] == "session=mine"
    assert seen["accept"] == "application/json"
    assert seen["x-forwarded"] == "not the family"
    assert seen["x-remote-username-hint"] == "not pinned"


def test_a_part_host_is_ignored_and_a_name_with_an_underscore_dropped(server: Server) -> None:
    host = server.base.split("//", 1)[1]
    (answer,) = batch(
        server.base,
        "/batch",
        sub("GET", "/inspect", headers=(("Host", "evil.example"), ("X_User", "root"))),
    )
    seen = inspected(answer)
    assert seen["host"] == host
    assert "x-user" not in seen
    assert "x_user" not in seen


def test_framing_headers_in_a_json_request_do_not_reach_the_application(server: Server) -> None:
    request = sub(
        "POST",
        "/inspect",
        b"abc",
        (
            ("Content-Type", "text/plain"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "999"),
            ("Connection", "keep-alive, X-Secret"),
            ("Upgrade", "websocket"),
        ),
        content_id="1",
    )
    (answer,) = post(
        server.base, "/batch", encode_json_requests([request]), "application/json"
    ).parts()
    seen = json.loads(answer.body)
    assert seen["body"] == "abc"
    assert seen["headers"]["content-length"] == "3"
    for name in ("transfer-encoding", "connection", "upgrade"):
        assert name not in seen["headers"]


def test_a_chunked_part_reaches_the_application_with_only_its_decoded_length(
    server: Server,
) -> None:
    message = (
        b"POST /inspect HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    (answer,) = post(server.base, "/batch", body(message)).parts()
    seen = json.loads(answer.body)
    assert seen["body"] == "abcde"
    assert "transfer-encoding" not in seen["headers"]
    assert seen["headers"]["content-length"] == "5"


def test_a_part_with_its_own_traceparent_does_not_inherit_the_batchs_tracestate(
    server: Server,
) -> None:
    own = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    batch_parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    alone, with_state, inheriting = batch(
        server.base,
        "/batch",
        sub("GET", "/inspect", headers=(("traceparent", own),)),
        sub("GET", "/inspect", headers=(("traceparent", own), ("tracestate", "mine=1"))),
        sub("GET", "/inspect"),
        headers=[("traceparent", batch_parent), ("tracestate", "batch=1")],
    )
    # A tracestate belongs to the traceparent beside it (W3C Trace Context).
    assert inspected(alone)["traceparent"] == own
    assert "tracestate" not in inspected(alone)
    assert (inspected(with_state)["traceparent"], inspected(with_state)["tracestate"]) == (
        own,
        "mine=1",
    )
    assert (inspected(inheriting)["traceparent"], inspected(inheriting)["tracestate"]) == (
        batch_parent,
        "batch=1",
    )
