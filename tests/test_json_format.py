"""The JSON batch format (OData 4.01 / Microsoft Graph shape), through Flask's test client.

Why: JSON-first clients send ``{"requests": [...]}`` and expect ``{"responses": [...]}`` in
request order, with each body carried as its media type says (a JSON value, a string, or
base64url). These tests check the shape, the ids, how ``url`` is resolved, bodies of every
kind in both directions, the validation errors that refuse a whole batch (naming the request)
and the limits. Every answer is parsed as strict JSON (no ``NaN``), as a browser would.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from typing import Any

import pytest
from flask import Flask, Response, abort, request
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from flask_batch import add_batch_route
from flask_batch.wire import json_answers
from flask_batch.wire.errors import MalformedBatch
from flask_batch.wire.fields import encode_fields
from flask_batch.wire.http1 import HOP_BY_HOP
from flask_batch.wire.json_answers import (
    JsonDialect,
    JsonResponseWriter,
    canonical_name,
    read_json_responses,
)
from flask_batch.wire.json_bodies import (
    body_media_type,
    body_to_string,
    dumps_compact,
    is_base64url_type,
    is_json,
    json_value_span,
)
from flask_batch.wire.model import Group, SubRequest, SubResponse

from .batching import problem
from .json_batching import (
    from_url64,
    item,
    json_header,
    reply,
    responses_of,
    run,
    send,
    strict_loads,
    url64,
)
from .properties import PROPERTY

ALL_BYTES = bytes(range(256))
#: A batch request that asks for OData's dialect (json_dialect="auto", the default).
ODATA_4_01 = {"OData-Version": "4.01"}
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


# --------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------


def make_app(**options: Any) -> Flask:
    """Views under /api, the batch endpoint at /api/batch; calls recorded in CALLS."""
    app = Flask(__name__)
    calls: list[str] = []
    app.config["CALLS"] = calls

    @app.before_request
    def record() -> None:
        if request.path != "/api/batch":
            calls.append(request.path)

    @app.get("/api/people/<name>")
    def person(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "path": request.path,
            "query": request.query_string.decode("latin-1"),
            "args": request.args.to_dict(),
        }

    @app.route("/api/echo", methods=ALL_METHODS)
    def echo() -> dict[str, Any]:
        return {
            "method": request.method,
            "content_type": request.headers.get("Content-Type"),
            "content_length": request.headers.get("Content-Length"),
            "body": base64.b64encode(request.get_data()).decode("ascii"),
            "headers": {name.lower(): value for name, value in request.headers.items()},
            "form": request.form.to_dict(),
        }

    @app.post("/api/reply")
    def reply() -> Response:
        """The request body back as the response body, with the type X-Reply-Type names."""
        return Response(request.get_data(), headers={"Content-Type": request.headers["X-Reply"]})

    @app.get("/api/cookies")
    def cookies() -> Response:
        response = Response("{}", content_type="application/json")
        response.set_cookie("first", "1")
        response.set_cookie("second", "2", httponly=True)
        return response

    @app.delete("/api/nothing")
    def nothing() -> Response:
        return Response(status=204)

    @app.get("/api/status/<int:code>")
    def status(code: int) -> Response:
        abort(code)

    @app.get("/api/boom")
    def boom() -> Response:
        raise RuntimeError("the view failed on purpose")

    add_batch_route(app, "/api/batch", **options)
    return app


def called(app: Flask) -> list[str]:
    """The paths the views were called with (the batch route's own excluded)."""
    recorded: list[str] = app.config["CALLS"]
    return recorded


def echoed(entry: dict[str, Any]) -> bytes:
    """The request body the echo view received."""
    assert entry["status"] == 200, entry
    return base64.b64decode(entry["body"]["body"])


# --------------------------------------------------------------------------------------
# Shape, ids, order
# --------------------------------------------------------------------------------------


def test_request_and_response_shape(client: FlaskClient) -> None:
    answer = send(
        client,
        {
            "requests": [
                item("alice", "GET", "/api/people/alice", headers={"Accept": "application/json"}),
                item("404", "GET", "/api/status/404"),
                item(
                    "e", "POST", "/api/echo", {"k": 1}, headers={"Content-Type": "application/json"}
                ),
            ]
        },
    )
    assert answer.headers["Content-Type"] == "application/json"
    alice, missing, posted = responses_of(answer)
    assert alice["id"] == "alice"
    assert alice["status"] == 200
    assert json_header(alice, "Content-Type") == "application/json"
    assert alice["body"]["name"] == "alice"
    assert (missing["id"], missing["status"]) == ("404", 404)
    assert posted["id"] == "e"
    assert json.loads(echoed(posted)) == {"k": 1}
    # Per-part failures never change the batch's own status.
    assert answer.status_code == 200


def test_responses_come_in_request_order_with_their_ids_echoed(client: FlaskClient) -> None:
    ids = ["z", "10", "2", "a-b c", "Ünïcode", "1"]
    answers = run(client, *(item(i, "GET", f"/api/people/p{n}") for n, i in enumerate(ids)))
    assert [a["id"] for a in answers] == ids
    assert [a["body"]["name"] for a in answers] == [f"p{n}" for n in range(len(ids))]


def test_an_empty_batch_answers_an_empty_list(client: FlaskClient) -> None:
    assert responses_of(send(client, {"requests": []})) == []


def test_charset_parameter_on_the_batch_is_accepted(client: FlaskClient) -> None:
    answer = send(
        client,
        {"requests": [item("1", "GET", "/api/people/x")]},
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert [a["status"] for a in responses_of(answer)] == [200]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
    ],
)
def test_a_json_body_with_another_content_type_is_415(
    app: Flask, client: FlaskClient, content_type: str
) -> None:
    document = {"requests": [item("1", "GET", "/api/people/x")]}
    answer = send(client, document, headers={"Content-Type": content_type})
    assert answer.status_code == 415
    problem(answer)
    assert called(app) == []


def test_a_gzip_compressed_json_batch_is_read(client: FlaskClient) -> None:
    document = {"requests": [item(str(i), "GET", f"/api/people/p{i}") for i in range(3)]}
    answer = client.post(
        "/api/batch",
        data=gzip.compress(json.dumps(document).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert [a["body"]["name"] for a in responses_of(answer)] == ["p0", "p1", "p2"]


def test_method_is_case_insensitive(client: FlaskClient) -> None:
    answers = run(
        client,
        item("1", "get", "/api/echo"),
        item("2", "pOsT", "/api/echo", "x", headers={"Content-Type": "text/plain"}),
        item("3", "Delete", "/api/echo"),
    )
    assert [a["body"]["method"] for a in answers] == ["GET", "POST", "DELETE"]


def test_request_headers_reach_the_part_and_outer_headers_are_inherited(
    client: FlaskClient,
) -> None:
    (own, inherited) = run(
        client,
        item("1", "GET", "/api/echo", headers={"X-Token": "part", "accept": "text/csv"}),
        item("2", "GET", "/api/echo"),
        headers={"X-Token": "outer"},
    )
    assert own["body"]["headers"]["x-token"] == "part"
    assert own["body"]["headers"]["accept"] == "text/csv"
    assert inherited["body"]["headers"]["x-token"] == "outer"


# --------------------------------------------------------------------------------------
# url: absolute path, relative to the batch URL, absolute URL of the batch's origin
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path", "query"),
    [
        ("/api/people/bob", "/api/people/bob", ""),
        ("/api/people/bob?x=1&y=2", "/api/people/bob", "x=1&y=2"),
        ("people/bob", "/api/people/bob", ""),  # relative to /api/batch
        ("./people/bob?x=1", "/api/people/bob", "x=1"),
        ("../api/people/bob", "/api/people/bob", ""),
        ("http://localhost/api/people/bob", "/api/people/bob", ""),
        ("http://LOCALHOST:80/api/people/bob?q=%20", "/api/people/bob", "q=%20"),
        ("people/zo%C3%AB", "/api/people/zoë", ""),
        ("people/zoë", "/api/people/zoë", ""),  # not percent-encoded by the client
        ("people/a b?q=x y", "/api/people/a b", "q=x%20y"),
    ],
)
def test_url_forms(client: FlaskClient, url: str, path: str, query: str) -> None:
    (answer,) = run(client, item("1", "GET", url))
    assert answer["status"] == 200, answer
    assert answer["body"]["path"] == path
    assert answer["body"]["query"] == query


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/api/people/bob",
        "http://evil.example/api/people/bob",
        "http://localhost:5000/api/people/bob",
        "http://user@localhost/api/people/bob",
    ],
)
def test_another_origin_is_a_400_part_and_the_batch_goes_on(
    app: Flask, client: FlaskClient, url: str
) -> None:
    refused, fine = run(client, item("x", "GET", url), item("y", "GET", "/api/people/ok"))
    assert refused["status"] == 400
    assert json_header(refused, "Content-Type") == "application/problem+json"
    assert "origin" in refused["body"]["detail"]
    assert fine["status"] == 200
    assert called(app) == ["/api/people/ok"]


def test_a_part_addressing_the_batch_endpoint_is_a_400_part(client: FlaskClient) -> None:
    (nested,) = run(
        client,
        item("n", "POST", "batch", {"requests": []}, headers={"Content-Type": "application/json"}),
    )
    assert nested["status"] == 400


# --------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------

STANDARD_B64 = base64.b64encode(ALL_BYTES).decode("ascii")
URLSAFE_B64 = base64.urlsafe_b64encode(ALL_BYTES).decode("ascii")
# The test data really exercises both alphabets and the padding.
assert "+" in STANDARD_B64
assert "/" in STANDARD_B64
assert "-" in URLSAFE_B64
assert "_" in URLSAFE_B64
assert URLSAFE_B64.endswith("==")

JSON_VALUES: list[Any] = [
    {"name": "alice", "age": 31},
    {"nested": {"list": [1, 2.5, None, True, False, "x", {"deep": [[]]}]}, "empty": {}},
    [1, "two", None, [3]],
    [],
    "just a string",
    42,
    -3.25,
    True,
    {"text": "Zoë — 5 € ✓ 世界 😀", "é": "key too"},
]


@pytest.mark.parametrize("value", JSON_VALUES)
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/problem+json",
        "application/vnd.api+json",
        "Application/Merge-Patch+JSON",
    ],
)
def test_a_json_request_body_carries_the_value(
    client: FlaskClient, content_type: str, value: Any
) -> None:
    (answer,) = run(
        client, item("1", "PUT", "/api/echo", value, headers={"Content-Type": content_type})
    )
    received = echoed(answer)
    assert json.loads(received) == value
    assert answer["body"]["content_type"] == content_type
    assert answer["body"]["content_length"] == str(len(received))


@pytest.mark.parametrize(
    ("content_type", "text", "expected"),
    [
        ("text/plain", "héllo € 世界\r\nline 2\n", "héllo € 世界\r\nline 2\n".encode()),
        ("text/plain; charset=utf-8", "😀", "😀".encode()),
        ("text/plain; charset=iso-8859-1", "café", b"caf\xe9"),
        ("text/plain; charset=ISO-8859-1", "ÿ", b"\xff"),
        ("text/csv; charset=utf-16-le", "a,b", "a,b".encode("utf-16-le")),
        ("text/html", "<p>x</p>", b"<p>x</p>"),
        ("text/plain", "", b""),
    ],
)
def test_a_text_request_body_carries_a_string(
    client: FlaskClient, content_type: str, text: str, expected: bytes
) -> None:
    (answer,) = run(
        client, item("1", "POST", "/api/echo", text, headers={"Content-Type": content_type})
    )
    assert echoed(answer) == expected


@pytest.mark.parametrize(
    ("content_type", "encoded"),
    [
        ("application/octet-stream", url64(ALL_BYTES)),  # base64url, no padding
        ("application/octet-stream", URLSAFE_B64),  # base64url, padded
        ("application/octet-stream", STANDARD_B64),  # the standard alphabet, padded
        ("image/png", STANDARD_B64.rstrip("=")),  # the standard alphabet, no padding
    ],
)
def test_a_binary_request_body_is_base64url_and_every_byte_arrives(
    client: FlaskClient, content_type: str, encoded: str
) -> None:
    (answer,) = run(
        client, item("1", "POST", "/api/echo", encoded, headers={"content-type": content_type})
    )
    assert echoed(answer) == ALL_BYTES
    assert answer["body"]["content_type"] == content_type


def test_a_form_body_is_base64url(client: FlaskClient) -> None:
    (answer,) = run(
        client,
        item(
            "1",
            "POST",
            "/api/echo",
            url64(b"a=1&b=caf%C3%A9"),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    )
    assert answer["body"]["form"] == {"a": "1", "b": "café"}


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, {"a": 1}),  # a body without any Content-Type
        ({"X-Other": "1"}, "text"),
        ({"Content-Type": "application/octet-stream"}, "***not base64***"),
        ({"Content-Type": "application/octet-stream"}, "Q"),  # a lone character
        ({"Content-Type": "application/octet-stream"}, "QQ==QQ"),  # padding inside
        ({"Content-Type": "application/octet-stream"}, "QUJD RA"),  # a space
        ({"Content-Type": "image/png"}, {"not": "a string"}),
        ({"Content-Type": "image/png"}, 12),
        ({"Content-Type": "text/plain"}, 12),
        ({"Content-Type": "text/plain"}, ["a"]),
        ({"Content-Type": "text/plain; charset=iso-8859-1"}, "5 €"),  # not encodable
        ({"Content-Type": "text/plain; charset=no-such-charset"}, "x"),
    ],
)
def test_a_body_that_cannot_be_read_is_a_400_for_that_part_only(
    app: Flask, client: FlaskClient, headers: dict[str, str], body: Any
) -> None:
    before, refused, after = run(
        client,
        item("before", "GET", "/api/people/before"),
        item("bad", "POST", "/api/echo", body, headers=headers),
        item("after", "GET", "/api/people/after"),
    )
    assert refused["status"] == 400, refused
    assert json_header(refused, "Content-Type") == "application/problem+json"
    assert refused["body"]["status"] == 400
    assert (before["status"], after["status"]) == (200, 200)
    assert called(app) == ["/api/people/before", "/api/people/after"]


def test_an_unreadable_request_content_type_names_the_request(
    app: Flask, client: FlaskClient
) -> None:
    """A body under a Content-Type whose parameters cannot be read is this request's error:
    a 400 part, or a 400 batch that says which request."""
    answer = send(
        client,
        {
            "requests": [
                item("ok", "GET", "/api/people/ok"),
                item("bad", "POST", "/api/echo", "hi", headers={"Content-Type": "text/plain; =x"}),
            ]
        },
    )
    if answer.status_code == 400:
        assert problem(answer).get("part") == 2, problem(answer)
    else:
        ok, bad = responses_of(answer)
        assert (ok["status"], bad["status"]) == (200, 400)


# --------------------------------------------------------------------------------------
# Response bodies
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "raw", "expected"),
    [
        (
            "application/json",
            b'{"a": [1, 2.5, null, true], "b": {"c": "d"}}',
            {"a": [1, 2.5, None, True], "b": {"c": "d"}},
        ),
        ("application/json", b"[1, 2, 3]\n", [1, 2, 3]),
        ("application/json", b'"a string"', "a string"),
        ("application/json", b"42", 42),
        ("application/json", b"-1.5e3", -1500.0),
        ("application/json", b"false", False),
        ("application/json; charset=utf-8", '{"name": "Zoë € 😀"}'.encode(), {"name": "Zoë € 😀"}),
        ("application/json", b'{"escaped": "\\u00e9\\ud83d\\ude00"}', {"escaped": "é😀"}),
        (
            "application/problem+json",
            b'{"title": "Conflict", "status": 409}',
            {"title": "Conflict", "status": 409},
        ),
        ("application/vnd.example.v2+json", b'{"v": 2}', {"v": 2}),
        ("text/plain; charset=utf-8", "Grüße 世界\r\n".encode(), "Grüße 世界\r\n"),
        ("text/plain; charset=iso-8859-1", b"caf\xe9", "café"),
        ("text/html", b"<b>x</b>", "<b>x</b>"),
        ("text/csv; charset=utf-16", "a,b".encode("utf-16"), "a,b"),
    ],
)
def test_a_json_or_text_response_body_carries_the_value(
    client: FlaskClient, content_type: str, raw: bytes, expected: Any
) -> None:
    (answer,) = run(client, reply("1", url64(raw), content_type))
    assert answer["status"] == 200
    assert answer["body"] == expected
    assert type(answer["body"]) is type(expected)
    assert "bodyEncoding" not in answer
    assert json_header(answer, "Content-Type") == content_type
    assert json_header(answer, "Content-Length") == str(len(raw))


def test_a_json_null_response_body_is_null(client: FlaskClient) -> None:
    (answer,) = run(client, reply("1", "null", "application/json", "text/plain"))
    assert "body" in answer
    assert answer["body"] is None
    assert json_header(answer, "Content-Length") == "4"


@pytest.mark.parametrize(
    ("content_type", "raw", "declared_text"),
    [
        ("application/octet-stream", ALL_BYTES, False),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00", False),
        ("application/pdf", b"%PDF-1.7 \xe2\xe3", False),
        ("application/json", b"{not json", True),
        ("application/json", b'{"a": 1} trailing', True),
        ("application/json", b"\xff\xfe\xfd", True),
        ("application/vnd.x+json", b"<xml/>", True),
        ("text/plain; charset=utf-8", b"\xff\xfe\xfd not utf-8", True),
        ("text/plain; charset=no-such-charset", b"abc", True),
    ],
)
def test_other_response_bodies_are_base64url_without_padding(
    client: FlaskClient, content_type: str, raw: bytes, declared_text: bool
) -> None:
    """As OData JSON 4.01 sends them (the answer in OData's dialect)."""
    (answer,) = run(client, reply("1", url64(raw), content_type), headers=ODATA_4_01)
    body = answer["body"]
    assert isinstance(body, str)
    assert _BASE64URL.fullmatch(body), body  # the url-safe alphabet, no padding
    assert from_url64(body) == raw
    if declared_text:
        # The type says JSON or text but the bytes are not: the answer says it is base64url.
        assert answer["bodyEncoding"] == "base64url"
    assert json_header(answer, "Content-Type") == content_type


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/jpeg"])
def test_graph_sends_binary_bodies_in_padded_standard_base64(
    client: FlaskClient, content_type: str
) -> None:
    """As Microsoft Graph sends them ("/9j/4AAQ..."): its Python client (msgraph-core)
    decodes no other, dropping base64url's "-" and "_" silently (tests/test_graph_client.py).
    A body that is not what its JSON or text type says stays base64url, marked."""
    raw = b"\xff\xd8\xff\xe0\xfb\xff\xbf\x3e"
    (answer,) = run(client, reply("1", url64(raw), content_type))
    assert answer["body"] == base64.b64encode(raw).decode() == "/9j/4Pv/vz4="
    assert "bodyEncoding" not in answer
    (marked,) = run(client, reply("2", url64(raw), "application/json"))
    assert (marked["body"], marked["bodyEncoding"]) == ("_9j_4Pv_vz4", "base64url")


@pytest.mark.parametrize("dialect", ["graph", "odata"])
def test_every_byte_value_round_trips_both_ways(client: FlaskClient, dialect: str) -> None:
    headers = ODATA_4_01 if dialect == "odata" else None
    data = ALL_BYTES + bytes(range(255, -1, -1)) + b"\r\n--x--\r\n"
    for length in range(len(data) - 3, len(data) + 1):  # each padding length
        content = reply("1", url64(data[:length]), "application/octet-stream")
        (answer,) = run(client, content, headers=headers)
        sent = data[:length]
        assert answer["body"] == (url64(sent) if headers else base64.b64encode(sent).decode())


def test_nan_from_the_app_does_not_make_the_answer_invalid_json(client: FlaskClient) -> None:
    """Python's json accepts NaN and Infinity; JSON (and JSON.parse) does not."""
    bad, fine = run(
        client,
        reply("nan", '{"x": NaN, "y": Infinity}', "application/json", "text/plain"),
        item("fine", "GET", "/api/people/fine"),
    )
    assert bad["status"] == 200
    assert bad["bodyEncoding"] == "base64url"
    assert from_url64(bad["body"]) == b'{"x": NaN, "y": Infinity}'
    assert fine["status"] == 200


def test_deeply_nested_json_from_the_app_does_not_break_the_batch(client: FlaskClient) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    answer = send(
        client,
        {
            "requests": [
                reply("deep", deep, "application/json", "text/plain"),
                item("next", "GET", "/api/people/next"),
            ]
        },
    )
    deep_answer, next_answer = responses_of(answer)
    assert deep_answer["status"] == 200
    if "bodyEncoding" in deep_answer:
        assert from_url64(deep_answer["body"]).decode() == deep
    else:
        assert json.dumps(deep_answer["body"], separators=(",", ":")) == deep
    assert next_answer["status"] == 200


def test_repeated_response_headers_become_a_list(client: FlaskClient) -> None:
    (answer,) = run(client, item("c", "GET", "/api/cookies"))
    cookies = json_header(answer, "Set-Cookie")
    assert isinstance(cookies, list)
    assert len(cookies) == 2
    assert cookies[0].startswith("first=1")
    assert cookies[1].startswith("second=2")
    assert "HttpOnly" in cookies[1]
    assert isinstance(json_header(answer, "Content-Type"), str)  # a single header stays a string


def test_head_and_204_have_no_body(client: FlaskClient) -> None:
    get, head, deleted = run(
        client,
        item("get", "GET", "/api/people/someone"),
        item("head", "HEAD", "/api/people/someone"),
        item("del", "DELETE", "/api/nothing"),
    )
    assert get["status"] == head["status"] == 200
    assert "body" not in head
    # HEAD keeps the Content-Length of the representation, as the multipart format does.
    length = json_header(get, "Content-Length")
    assert isinstance(length, str)
    assert int(length) > 0
    assert json_header(head, "Content-Length") == length
    assert deleted["status"] == 204
    assert "body" not in deleted


def test_an_exception_in_a_part_is_a_500_part_and_the_batch_goes_on(
    app: Flask, client: FlaskClient
) -> None:
    boom, after = run(client, item("b", "GET", "/api/boom"), item("a", "GET", "/api/people/a"))
    assert boom["status"] == 500
    assert after["status"] == 200
    assert called(app) == ["/api/boom", "/api/people/a"]


# --------------------------------------------------------------------------------------
# Validation: the whole batch is refused with a 400 naming the request, before anything runs
# --------------------------------------------------------------------------------------

OK = item("ok", "GET", "/api/people/ok")


@pytest.mark.parametrize(
    ("document", "part", "mentions"),
    [
        pytest.param([OK], None, [], id="not-an-object"),
        pytest.param("requests", None, [], id="a-string"),
        pytest.param({}, None, ["requests"], id="no-requests"),
        pytest.param({"requests": {"ok": OK}}, None, ["requests"], id="requests-not-a-list"),
        pytest.param({"requests": [OK, 1]}, 2, [], id="request-not-an-object"),
        pytest.param({"requests": [OK, [OK]]}, 2, [], id="request-is-a-list"),
        pytest.param(
            {"requests": [OK, {"method": "GET", "url": "/x"}]}, 2, ["id"], id="missing-id"
        ),
        pytest.param(
            {"requests": [OK, {"id": "", "method": "GET", "url": "/x"}]}, 2, ["id"], id="empty-id"
        ),
        pytest.param(
            {"requests": [OK, {"id": 7, "method": "GET", "url": "/x"}]}, 2, ["id"], id="numeric-id"
        ),
        pytest.param(
            {"requests": [{"id": "1", "url": "/x"}, OK]}, 1, ["method"], id="missing-method"
        ),
        pytest.param(
            {"requests": [OK, {"id": "1", "method": "", "url": "/x"}]},
            2,
            ["method"],
            id="empty-method",
        ),
        pytest.param(
            {"requests": [OK, {"id": "1", "method": "GE T", "url": "/x"}]},
            2,
            ["method"],
            id="invalid-method",
        ),
        pytest.param(
            {"requests": [OK, {"id": "1", "method": "GET"}]}, 2, ["url"], id="missing-url"
        ),
        pytest.param(
            {"requests": [OK, {"id": "1", "method": "GET", "url": ""}]}, 2, ["url"], id="empty-url"
        ),
        pytest.param(
            {"requests": [OK, {"id": "1", "method": "GET", "url": None}]}, 2, ["url"], id="null-url"
        ),
        pytest.param(
            {"requests": [OK, item("1", "GET", "/x", headers=["a"])]},
            2,
            ["headers"],
            id="headers-not-an-object",
        ),
        pytest.param(
            {"requests": [OK, item("1", "GET", "/x", headers={"X-N": 1})]},
            2,
            ["headers"],
            id="numeric-header-value",
        ),
        pytest.param(
            {"requests": [OK, item("1", "GET", "/x", headers={"X-N": ["a", "b"]})]},
            2,
            ["headers"],
            id="list-header-value",
        ),
        pytest.param(
            {"requests": [OK, item("1", "GET", "/x", headers={"X-N": "a\r\nX-B: b"})]},
            2,
            [],
            id="crlf-in-header-value",
        ),
        pytest.param(
            {"requests": [OK, item("1", "GET", "/x", headers={"Bad Name": "a"})]},
            2,
            [],
            id="invalid-header-name",
        ),
        pytest.param(
            {"requests": [item("dup", "GET", "/x"), OK, item("dup", "GET", "/y")]},
            3,
            ["dup"],
            id="duplicate-ids",
        ),
        pytest.param(
            {"requests": [OK, item("b", "GET", "/x", dependsOn=["nowhere"])]},
            2,
            ["nowhere"],
            id="unknown-dependency",
        ),
        pytest.param(
            {"requests": [item("a", "GET", "/x", dependsOn=["later"]), item("later", "GET", "/y")]},
            1,
            ["later"],
            id="dependency-on-a-later-request",
        ),
        pytest.param(
            {
                "requests": [
                    item("a", "GET", "/x", depends_on=["b"]),
                    item("b", "GET", "/y", depends_on=["a"]),
                ]
            },
            1,
            ["b"],
            id="cycle",
        ),
        pytest.param(
            {"requests": [OK, item("self", "GET", "/x", dependsOn=["self"])]},
            2,
            ["self"],
            id="self-dependency",
        ),
        pytest.param(
            {"requests": [OK, item("b", "GET", "/x", dependsOn=["ok"], depends_on=["ok"])]},
            2,
            ["dependsOn", "depends_on"],
            id="both-synonyms",
        ),
        pytest.param(
            {"requests": [OK, item("b", "GET", "/x", dependsOn="ok")]},
            2,
            [],
            id="dependsOn-not-a-list",
        ),
        pytest.param(
            {"requests": [OK, item("b", "GET", "/x", dependsOn=[1])]},
            2,
            [],
            id="dependsOn-not-strings",
        ),
    ],
)
def test_an_invalid_batch_is_refused_naming_the_request(
    app: Flask, client: FlaskClient, document: Any, part: int | None, mentions: list[str]
) -> None:
    answer = send(client, document)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    refusal = problem(answer)
    assert refusal.get("part") == part, refusal
    for word in mentions:
        assert word in refusal["detail"], refusal
    assert called(app) == []  # nothing ran


@pytest.mark.parametrize(
    "body",
    [b" ", b"{", b'{"requests": [}', b"\xff\xfe", b'{"requests": []} extra', b"[" * 100_000],
)
def test_invalid_json_is_a_400(app: Flask, client: FlaskClient, body: bytes) -> None:
    answer = send(client, body)
    assert answer.status_code == 400
    assert "JSON" in problem(answer)["detail"]
    assert called(app) == []


# --------------------------------------------------------------------------------------
# Limits: 413 naming the limit and its value, before anything runs
# --------------------------------------------------------------------------------------


def limit_of(answer: TestResponse) -> tuple[str, int]:
    assert answer.status_code == 413, answer.get_data(as_text=True)
    refusal = problem(answer)
    return refusal["limit"], refusal["value"]


def test_max_parts_exact_and_one_more() -> None:
    app = make_app(max_parts=3)
    client = app.test_client()
    exact = [item(str(i), "GET", f"/api/people/{i}") for i in range(3)]
    assert [a["status"] for a in run(client, *exact)] == [200] * 3
    called(app).clear()
    over = send(client, {"requests": [*exact, item("3", "GET", "/api/people/3")]})
    assert limit_of(over) == ("max_parts", 3)
    assert called(app) == []


def test_max_body_size_exact_and_one_more() -> None:
    app = make_app(max_body_size=300)
    client = app.test_client()
    base = {"requests": [item("1", "GET", "/api/people/x")], "padding": ""}
    padding = 300 - len(json.dumps(base).encode())
    exact = json.dumps({**base, "padding": "x" * padding}).encode()
    assert len(exact) == 300
    assert [a["status"] for a in responses_of(send(client, exact))] == [200]
    called(app).clear()
    over = json.dumps({**base, "padding": "x" * (padding + 1)}).encode()
    assert limit_of(send(client, over)) == ("max_body_size", 300)
    assert called(app) == []


def test_max_headers() -> None:
    app = make_app(max_headers=3)
    client = app.test_client()
    three = {f"X-H{i}": "v" for i in range(3)}
    assert [a["status"] for a in run(client, item("1", "GET", "/api/echo", headers=three))] == [200]
    called(app).clear()
    four = {f"X-H{i}": "v" for i in range(4)}
    answer = send(client, {"requests": [OK, item("1", "GET", "/api/echo", headers=four)]})
    assert limit_of(answer) == ("max_headers", 3)
    assert called(app) == []


def test_max_header_size() -> None:
    app = make_app(max_header_size=256)
    client = app.test_client()
    small = {"X-Small": "v" * 100}
    assert [a["status"] for a in run(client, item("1", "GET", "/api/echo", headers=small))] == [200]
    called(app).clear()
    large = {"X-Large": "v" * 300}
    answer = send(client, {"requests": [OK, item("1", "GET", "/api/echo", headers=large)]})
    assert limit_of(answer) == ("max_header_size", 256)
    assert called(app) == []


def test_max_part_size() -> None:
    app = make_app(max_part_size=1024)
    client = app.test_client()
    text = {"Content-Type": "text/plain"}
    fits = item("1", "POST", "/api/echo", "x" * 100, headers=text)
    assert [a["status"] for a in run(client, fits)] == [200]
    called(app).clear()
    binary = {"Content-Type": "application/octet-stream"}
    too_big = item("2", "POST", "/api/echo", url64(b"\0" * 2000), headers=binary)
    assert limit_of(send(client, {"requests": [OK, too_big]})) == ("max_part_size", 1024)
    assert called(app) == []


# --------------------------------------------------------------------------------------
# Header names of JSON answers, by dialect
# --------------------------------------------------------------------------------------

MIXED_CASE = (
    ("content-type", "application/json"),
    ("ETAG", '"v1"'),
    ("www-authenticate", "Bearer"),
    ("content-md5", "Q2hlY2s="),
    ("dnt", "1"),
    ("x-xss-protection", "0"),
    ("odata-version", "4.01"),
    ("OData-MaxVersion", "4.01"),
    ("content-id", "7"),
    ("x-request-id", "abc"),
    ("set-cookie", "a=1"),
    ("Set-Cookie", "b=2"),
    ("SET-COOKIE", "c=3"),
    ("x-custom-header", "x"),
)


def written(dialect: JsonDialect) -> dict[str, Any]:
    writer = JsonResponseWriter(dialect=dialect)
    response = SubResponse(200, "OK", MIXED_CASE, b"{}")
    request = SubRequest("GET", "/", (), b"", "1")
    headers: dict[str, Any] = strict_loads(writer.part(response, request))["headers"]
    return headers


def test_graph_answers_spell_header_names_as_usual_whatever_the_application_sent() -> None:
    """Microsoft Graph writes (and its JavaScript client reads) ``Content-Type``: ASGI
    applications send lower-case names, and the irregular ones have their own spelling."""
    assert written("graph") == {
        "Content-Type": "application/json",
        "ETag": '"v1"',
        "WWW-Authenticate": "Bearer",
        "Content-MD5": "Q2hlY2s=",
        "DNT": "1",
        "X-XSS-Protection": "0",
        "OData-Version": "4.01",
        "OData-MaxVersion": "4.01",
        "Content-ID": "7",
        "X-Request-ID": "abc",
        "Set-Cookie": ["a=1", "b=2", "c=3"],  # one header whatever the case, in order
        "X-Custom-Header": "x",
        "Content-Length": "2",
    }


def test_odata_answers_write_header_names_in_lower_case() -> None:
    """OData JSON Format 4.01, section 19.5: each response header name MUST be lower case."""
    headers = written("odata")
    assert list(headers) == [
        "content-type",
        "etag",
        "www-authenticate",
        "content-md5",
        "dnt",
        "x-xss-protection",
        "odata-version",
        "odata-maxversion",
        "content-id",
        "x-request-id",
        "set-cookie",
        "x-custom-header",
        "content-length",
    ]
    assert headers["set-cookie"] == ["a=1", "b=2", "c=3"]


def test_graph_is_the_default_and_other_dialects_are_refused() -> None:
    request = SubRequest("GET", "/", (), b"", "1")
    response = SubResponse(200, "OK", (("content-type", "text/plain"),), b"x")
    assert b'"Content-Type"' in JsonResponseWriter().part(response, request)
    with pytest.raises(ValueError, match="dialect"):
        JsonResponseWriter(dialect="google")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "spelt"),
    [
        ("TE", "TE"),
        ("te", "TE"),
        ("x-ua-compatible", "X-UA-Compatible"),
        ("sec-websocket-key", "Sec-WebSocket-Key"),
        ("ACCEPT-CH", "Accept-CH"),
        ("odata-entityid", "OData-EntityId"),
        ("x-forwarded-for", "X-Forwarded-For"),
        ("x", "X"),
        ("a--b", "A--B"),
    ],
)
def test_canonical_names(name: str, spelt: str) -> None:
    assert canonical_name(name) == spelt


def test_the_json_writer_checks_each_header_block_once_a_batch_and_a_bad_one_every_time() -> None:
    # The writer remembers the header blocks it found sound (per batch, 64 at most): past
    # that bound, and for a block that could inject, every answer is checked again.
    writer = JsonResponseWriter()
    request = SubRequest("GET", "/a", (), b"", "1")
    bad = (("X-A", "a\r\nX-Injected: 1"),)
    for index in range(100):  # distinct blocks: the table fills, then stops growing
        writer.part(SubResponse(200, "OK", (("X-N", str(index)),), b""), request)
    assert len(writer._blocks) == 64
    for _ in range(2):  # refused every time, never kept
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            writer.part(SubResponse(200, "OK", bad, b""), request)
    assert bad not in writer._blocks


def test_the_json_answer_reader_reads_every_body_by_its_type_past_its_bound() -> None:
    # What each Content-Type says is remembered for one answer (64 types at most): the
    # bodies after that bound are read by their type all the same, JSON or text.
    def entry(index: int) -> dict[str, Any]:
        body: object = {"n": index}
        content_type = f"application/x-{index}+json"
        if index % 2:
            body, content_type = f"text {index}", f"text/x-{index}"
        headers = {"Content-Type": content_type}
        return {"id": str(index), "status": 200, "headers": headers, "body": body}

    read = read_json_responses(json.dumps({"responses": [entry(i) for i in range(200)]}).encode())
    for index, (request_id, answer) in enumerate(read):
        assert request_id == str(index)
        expected = f"text {index}" if index % 2 else json.dumps({"n": index})
        assert answer.body == expected.encode()


def test_the_json_answer_reader_checks_every_header_block_past_its_bound() -> None:
    # The clients' reader remembers the blocks it found sound in one answer (64 at most);
    # a block that could inject is refused wherever it comes, after 100 distinct ones too.
    def entry(index: int, value: str) -> dict[str, Any]:
        return {"id": str(index), "status": 200, "headers": {"X-N": value}}

    sound = [entry(index, str(index)) for index in range(100)]
    read = read_json_responses(json.dumps({"responses": sound * 2}).encode())
    assert [answer.headers for _, answer in read][-1] == (("X-N", "99"),)
    injected = json.dumps({"responses": [*sound, entry(100, "a\r\nX-Injected: 1")]})
    with pytest.raises(MalformedBatch, match="CR, LF or NUL"):
        read_json_responses(injected.encode())


def _reference_answer(
    response: SubResponse, request: SubRequest, dialect: JsonDialect, first: bool
) -> bytes:
    """What the JSON writer writes for ``response``, the long way: a dict of the whole
    answer made for each part and encoded by ``json``, as it was written before the writer
    worked each header block out once (the reference of the test below)."""
    if not 100 <= response.status <= 999:
        raise ValueError(f"invalid status code {response.status}")
    given, fields = None, []
    for name, value in response.headers:
        if name.lower() == "content-length":
            given = value
        elif name.lower() not in HOP_BY_HOP:
            fields.append((name, value))
    encode_fields(tuple(fields))  # the wire's checks: no CR, LF or NUL, Latin-1
    keep = request.method == "HEAD" or response.status == 304
    length = given if keep and given and given.isascii() and given.isdigit() else None
    fields.append(("Content-Length", length or str(len(response.body))))
    body = b"" if keep else response.body
    spell = canonical_name if dialect == "graph" else str.lower
    headers: dict[str, Any] = {}
    for name, value in fields:
        before = headers.get(spell(name))
        headers[spell(name)] = (
            value if before is None else [*([before] if isinstance(before, str) else before), value]
        )
    item: dict[str, Any] = {"id": request.content_id}
    if request.group is not None:
        item["atomicityGroup"] = request.group.name
    item.update(status=response.status, headers=headers)
    content_type = next((v for n, v in fields if n.lower() == "content-type"), None)
    as_written = b""
    if body:
        span = json_value_span(body) if is_json(body_media_type(content_type)[0]) else None
        if span is not None:
            as_written = bytes(body[span[0] : span[1]])
        else:
            binary = is_base64url_type(content_type)
            item["body"], encoded = body_to_string(
                body, content_type, standard_base64=dialect == "graph" and binary
            )
            if encoded and not binary:
                item["bodyEncoding"] = "base64url"
    encoded_item = dumps_compact(item)
    if as_written:
        encoded_item = encoded_item[:-1] + b',"body":' + as_written + b"}"
    return (b"" if first else b",") + encoded_item


_ANSWERS = [
    SubResponse(
        200, "OK", (("Content-Type", "application/json"), ("Content-Length", "7")), b'{"a":1}'
    ),
    SubResponse(200, "OK", (("content-type", "application/json"),), b' [1, {"b": null}] \n'),
    SubResponse(201, "Created", (("Content-Type", "application/json"),), b'{"a": 1} trailing'),
    SubResponse(
        200, "OK", (("Content-Type", "application/vnd.api+json; charset=utf-8"),), '"é"'.encode()
    ),
    SubResponse(
        200, "OK", (("Content-Type", "text/plain; charset=latin-1"),), "café".encode("latin-1")
    ),
    SubResponse(200, "OK", (("Content-Type", "text/plain"),), b"\xff not utf-8"),
    SubResponse(200, "OK", (("Content-Type", "image/png"),), bytes(range(256))),
    SubResponse(200, "OK", (), b"untyped"),
    SubResponse(204, "No Content", (("X-Trace", "abc"), ("Connection", "close")), b""),
    SubResponse(304, "Not Modified", (("ETag", '"v1"'), ("Content-Length", "1234")), b""),
    SubResponse(
        200, "OK", (("Content-Length", "1234"), ("content-type", "application/json")), b"[]"
    ),
    SubResponse(
        200, "OK", (("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("SET-COOKIE", "c=3")), b"x"
    ),
    SubResponse(
        200,
        "OK",
        (("X-Odd", 'q"uote\\back'), ("X-Latin", "naïve"), ("www-authenticate", "Basic")),
        b"",
    ),
    SubResponse(200, "OK", [("Content-Type", "application/json")], b"{}"),  # type: ignore[arg-type]  # a list: not a key
    SubResponse(200, "OK", (("Content-Type", "application/json"), ("Content-Length", "x")), b"1"),
    SubResponse(999, "", (), b""),
    SubResponse(99, "", (), b""),
    SubResponse(200, "OK", (("X-A", "a\r\nX-Injected: 1"),), b""),
    SubResponse(200, "OK", (("X-Snow", "☃"),), b""),
]
_GROUP = Group('g "1"', 2, 0)
_REQUESTS = [
    SubRequest("GET", "/", (), b"", "1"),
    SubRequest("HEAD", "/", (), b"", 'id with "quotes" and \\'),
    SubRequest("POST", "/", (), b"", "ünï\u2028", group=_GROUP),
    SubRequest("GET", "/", (), b"", "\x7f\x01"),
    SubRequest("GET", "/", (), b"", None),
]


@pytest.mark.parametrize("dialect", ["graph", "odata"])
def test_the_json_writer_writes_what_the_whole_answer_encoded_by_json_would(
    dialect: JsonDialect,
) -> None:
    # Each header block is worked out once and each part's answer put together from it:
    # byte for byte what encoding each whole answer with json gave, every field and body
    # kind, HEAD and 304 lengths, groups, ids to escape, and the same refusals.
    writer = JsonResponseWriter(dialect)
    first = True
    for _ in range(2):  # the second time round, from the blocks worked out the first
        for sub_request in _REQUESTS:
            for response in _ANSWERS:
                try:
                    expected = _reference_answer(response, sub_request, dialect, first)
                except ValueError as refusal:
                    with pytest.raises(ValueError, match=str(refusal).split(" ", 1)[1]):
                        writer.part(response, sub_request)
                    continue
                assert writer.part(response, sub_request) == expected, (response, sub_request)
                first = False


def _read_both_ways(answer: bytes) -> tuple[object, object]:
    """``read_json_responses(answer)`` with its short way for the usual shape of a response,
    and member by member only; each a result or the error it raised."""

    def outcome() -> object:
        try:
            return read_json_responses(answer)
        except MalformedBatch as error:
            return ("refused", error.detail)

    usual = outcome()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_answers, "_usual_response", lambda text, start: None)
        by_members = outcome()
    return usual, by_members


_RESPONSES_READ = [
    b'{"id":"1","status":200,"headers":{"Content-Type":"application/json"},"body":{"a":[1]}}',
    b'{ "id" : "2" , "status" : 201 , "headers" : { } }',
    b'{"id":"3","atomicityGroup":"g","status":204,"headers":{"X-A":"1","X-A":"2"}}',
    b'{"id":"\\u00e9\\ud800","status":200,"headers":{"content-type":"text/plain"},"body":"caf\\u00e9"}',
    b'{"id":"5","status":200,"headers":{"Content-Type":"image/png"},"body":"AAEC"}',
    b'{"id":"6","status":200,"headers":{"Content-Type":"application/json"},'
    b'"body":"bm90IGpzb24","bodyEncoding":"base64url"}',
    b'{"id":"7","status":200,"headers":{},"body":[1, {"b": null}] }',
    b'{"id":"8","status":200,"headers":{},"body":"AAEC"}',
    b'{"id":"9","status":99,"headers":{}}',
    b'{"id":"10","status":-200,"headers":{}}',
    b'{"id":"11","status":200.0,"headers":{}}',
    b'{"id":12,"status":200,"headers":{}}',
    b'{"status":200,"id":"13","headers":{}}',
    b'{"id":"14","status":200,"headers":{"Set-Cookie":["a=1","b=2"]}}',
    b'{"id":"15","status":200,"headers":{"X-A":"a\\r\\nX-B: 1"}}',
    b'{"id":"16","status":200,"headers":{},"body":{"a":1},"extra":true}',
    b'{"id":"17","status":200,"headers":{},"body":{"a":1},"bodyEncoding":7}',
    b'{"id":"18","status":200,"headers":{},"body":{"a":1,}}',
    b'{"id":"19","status":200,"headers":{},"body":' + b"[" * 65 + b"]" * 65 + b"}",
    b'{"id":"20","status":200,"headers":{}}  ',
    b'{"id":"21","status":200,"headers":{},"body":{"a":1}',
]


@pytest.mark.parametrize("response", _RESPONSES_READ)
def test_a_json_answer_reads_alike_the_short_way_and_member_by_member(response: bytes) -> None:
    # The clients read a response of the usual shape (id, status, headers, body, in order)
    # in two matches: the same answers, and the same refusals, as member by member.
    answer = b'{"responses": [' + response + b", " + response + b"]}"
    usual, by_members = _read_both_ways(answer)
    assert usual == by_members


@PROPERTY
@given(
    responses=st.lists(
        st.fixed_dictionaries(
            {
                "id": st.text(max_size=6) | st.integers(),
                "status": st.sampled_from([200, 204, 404, 99, 1000]),
                "headers": st.dictionaries(
                    st.sampled_from(["Content-Type", "X-A", "content-type", "Set-Cookie"]),
                    st.sampled_from(["application/json", "text/plain", "image/png", "a\u00e9"])
                    | st.lists(st.text(max_size=3), max_size=2),
                    max_size=3,
                ),
            },
            optional={
                "atomicityGroup": st.text(max_size=3),
                "body": st.recursive(
                    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: (
                        st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
                    ),
                    max_leaves=8,
                ),
                "bodyEncoding": st.sampled_from(["base64url", "other"]),
            },
        ),
        max_size=4,
    ),
    indent=st.sampled_from([None, 1]),
    ascii_only=st.booleans(),
)
def test_any_json_answer_reads_alike_both_ways(
    responses: list[dict[str, Any]], indent: int | None, ascii_only: bool
) -> None:
    answer = json.dumps({"responses": responses}, indent=indent, ensure_ascii=ascii_only)
    usual, by_members = _read_both_ways(answer.encode())
    assert usual == by_members


_FIELD_NAMES = st.sampled_from(
    (
        *("Content-Type", "content-type", "Content-Length", "Connection"),
        *("Set-Cookie", "set-cookie", "ETag", "X-Odd", "www-authenticate"),
    )
)


@PROPERTY
@given(
    answers=st.lists(
        st.tuples(
            st.sampled_from([200, 201, 204, 304, 404]),
            st.lists(
                st.tuples(
                    _FIELD_NAMES,
                    st.sampled_from(["application/json", "text/plain", "image/png", "12"])
                    | st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=6),
                ),
                max_size=4,
            ).map(tuple),
            st.sampled_from([b"", b'{"a": 1}', b" [1] ", b"not json", "é".encode(), b"\x00\xff"]),
            st.sampled_from(["GET", "HEAD", "POST"]),
            st.text(max_size=4) | st.none(),
        ),
        max_size=8,
    ),
    dialect=st.sampled_from(["graph", "odata"]),
)
def test_any_answers_are_written_as_the_whole_answer_encoded_by_json_would_be(
    answers: list[tuple[int, tuple[tuple[str, str], ...], bytes, str, str | None]],
    dialect: JsonDialect,
) -> None:
    writer = JsonResponseWriter(dialect)
    first = True
    for status, fields, body, method, content_id in answers:
        response = SubResponse(status, "", fields, body)
        sub_request = SubRequest(method, "/", (), b"", content_id)
        try:
            expected = _reference_answer(response, sub_request, dialect, first)
        except ValueError:
            with pytest.raises(ValueError):  # noqa: PT011 (the reference's refusal, whichever)
                writer.part(response, sub_request)
            continue
        assert writer.part(response, sub_request) == expected
        first = False
