"""The client's JSON format and ``depends_on=``, end to end over a socket.

Why: ``Batching(url, format="json")`` promises responses that behave exactly as in the
multipart case, so every check here sends the same requests in both formats and compares what
the two sessions hand out (status, reason, headers, content, text, json(), raise_for_status,
cookies). ``depends_on=`` must work in both formats, and what cannot be sent (a dependency
outside the batch, a JSON-format body without a Content-Type) must fail when it is queued,
not when the batch is sent.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

import pytest
import requests
from flask import Response

from flask_batch.client import BatchFailed, Batching, BatchNotSent
from tests.client_app import BINARY, GZIPPED_TEXT, TEXT, State, create_app
from tests.servers import live_server

Format = Literal["multipart", "json"]
FORMATS: list[Format] = ["multipart", "json"]


@dataclass(frozen=True)
class Server:
    base: str
    state: State

    def session(self, fmt: Format) -> Batching:
        return Batching(self.base + "/batch", format=fmt, timeout=10)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    state = State()
    app = create_app(state)

    @app.get("/odd-type")
    def odd_type() -> Response:
        # A Content-Type whose parameter has no value: sent as the app wrote it.
        return Response(b"odd", headers={"Content-Type": "text/plain; charset"})

    @app.get("/json-array")
    def json_array() -> Response:
        return Response('[1, "é", null, {"a": []}]', content_type="application/json")

    with live_server(app) as base:
        yield Server(base, state)


def test_an_id_answered_twice_fails_the_batch(server: Server) -> None:
    s = Batching(server.base + "/fake/duplicate-id", format="json", timeout=10)
    queued = [s.get(f"{server.base}/echo/{index}") for index in range(3)]
    with pytest.raises(BatchFailed, match="the server answered id 1 twice") as info:
        s.send_batch()
    assert info.value.requests == [r.request for r in queued]
    for r in queued:
        with pytest.raises(BatchNotSent, match="twice"):
            _ = r.status_code


def test_an_unknown_format_is_refused() -> None:
    for fmt in ("xml", "JSON", "", "multipart/mixed"):
        with pytest.raises(ValueError, match="format"):
            Batching("http://127.0.0.1:1/batch", format=fmt)  # type: ignore[arg-type]


def test_the_seed_example_in_json(server: Server) -> None:
    base = server.base
    with Batching(base + "/batch", format="json") as s:
        alice = s.patch(base + "/people/json-alice/", json={"age": 31})
        bob = s.patch(base + "/people/json-bob/", json={"age": 40})
    assert (alice.status_code, alice.json()) == (200, {"name": "json-alice", "age": 31})
    assert (bob.status_code, bob.json()) == (200, {"name": "json-bob", "age": 40})
    assert server.state.people["json-alice"] == {"name": "json-alice", "age": 31}


# --------------------------------------------------------------------------------------
# The same requests in both formats: the responses behave the same
# --------------------------------------------------------------------------------------

# name: (method, path, keyword arguments)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "binary": ("GET", "/binary", {}),
    "text": ("GET", "/text", {}),
    "latin": ("GET", "/latin", {}),
    "no-charset": ("GET", "/no-charset", {}),
    "gzip": ("GET", "/gzip", {}),
    "json": ("GET", "/echo/x?a=1&b=%C3%A9", {}),
    "json-array": ("GET", "/json-array", {}),
    "post-json": ("POST", "/echo", {"json": {"é": [1, None, 2.5], "nested": {"k": "v"}}}),
    "form": ("POST", "/echo", {"data": {"a": "1", "b": "é"}}),
    "files": ("POST", "/echo", {"files": {"f": ("a.bin", BINARY, "application/octet-stream")}}),
    "text-body": (
        "PUT",
        "/mirror",
        {"data": TEXT.encode(), "headers": {"Content-Type": "text/plain; charset=utf-8"}},
    ),
    "latin-body": (
        "PUT",
        "/mirror",
        {
            "data": "café".encode("latin-1"),
            "headers": {"Content-Type": "text/plain; charset=iso-8859-1"},
        },
    ),
    "binary-body": (
        "POST",
        "/mirror",
        {"data": BINARY, "headers": {"Content-Type": "application/octet-stream"}},
    ),
    "problem-body": (
        "POST",
        "/mirror",
        {"data": b'{"title": "x"}', "headers": {"Content-Type": "application/problem+json"}},
    ),
    "not-found": ("GET", "/status/404", {}),
    "teapot": ("GET", "/status/418", {}),
    "boom": ("GET", "/boom", {}),
    "no-content": ("DELETE", "/people/nobody/", {}),
    "head": ("HEAD", "/text", {}),
    "cookies": ("GET", "/cookies/set", {}),
    "redirect": ("GET", "/redirect", {}),
}
JSON_BODIES = {
    "json",
    "json-array",
    "post-json",
    "form",
    "files",
    "cookies",
    "problem-body",
}


@pytest.fixture(scope="module")
def both(server: Server) -> dict[str, tuple[requests.Response, requests.Response]]:
    """Each case answered in the multipart format and in the JSON format."""
    answered: dict[Format, dict[str, requests.Response]] = {}
    for fmt in FORMATS:
        with server.session(fmt) as s:
            answered[fmt] = {
                name: s.request(method, server.base + path, **kwargs)
                for name, (method, path, kwargs) in CASES.items()
            }
    return {name: (answered["multipart"][name], answered["json"][name]) for name in CASES}


ECHOES = {"json", "post-json", "form", "files"}


def comparable_echo(echo: dict[str, Any]) -> dict[str, Any]:
    """What the echo view saw, less what may differ between the formats: a JSON request body
    travels as its value (its bytes may change), and an upload has its own random boundary."""
    body = base64.b64decode(echo.pop("body"))
    if echo["json"] is not None:
        assert json.loads(body) == echo["json"]
    echo["headers"] = [
        pair for pair in echo["headers"] if pair[0] not in ("Content-Length", "Content-Type")
    ]
    return echo


@pytest.mark.parametrize("name", list(CASES))
def test_json_format_responses_behave_as_multipart_ones(
    both: dict[str, tuple[requests.Response, requests.Response]], name: str
) -> None:
    multipart, json_format = both[name]
    assert json_format.status_code == multipart.status_code
    assert json_format.ok is multipart.ok
    # The JSON format has no reason phrase: the standard one stands in for the app's own
    # (Werkzeug's are upper case, "NOT FOUND"; the app's own, "Binary Is Fine", is lost).
    assert json_format.reason == HTTPStatus(multipart.status_code).phrase
    if name != "binary":  # the only view with a reason phrase of its own
        assert json_format.reason.lower() == multipart.reason.lower()
    assert json_format.url == multipart.url
    assert json_format.request.method == multipart.request.method
    for header in multipart.headers:
        if header.lower() != "content-length":
            assert json_format.headers[header] == multipart.headers[header], header
    assert set(map(str.lower, json_format.headers)) == set(map(str.lower, multipart.headers))
    assert json_format.raw.headers.getlist("Set-Cookie") == multipart.raw.headers.getlist(
        "Set-Cookie"
    )
    assert json_format.encoding == multipart.encoding
    if name in ECHOES:
        assert comparable_echo(json_format.json()) == comparable_echo(multipart.json())
    elif name in JSON_BODIES:
        # A JSON body travels as its value: the same JSON, not necessarily the same bytes.
        assert json_format.json() == multipart.json()
    else:
        assert json_format.content == multipart.content
        assert json_format.text == multipart.text
    if name == "head" or "Content-Encoding" in multipart.headers:
        # The length of the representation, or of the encoded body: as the app said.
        assert json_format.headers["Content-Length"] == multipart.headers["Content-Length"]
    else:
        assert json_format.headers["Content-Length"] == str(len(json_format.content))
    assert dict(json_format.cookies) == dict(multipart.cookies)
    assert raises_http_error(json_format) is raises_http_error(multipart)
    assert raises_http_error(json_format) is (multipart.status_code >= 400)


def raises_http_error(response: requests.Response) -> bool:
    try:
        response.raise_for_status()
    except requests.HTTPError as error:
        return error.response is response
    return False


def test_exact_bodies_in_the_json_format(
    both: dict[str, tuple[requests.Response, requests.Response]],
) -> None:
    _, binary = both["binary"]
    assert binary.content == BINARY
    assert binary.status_code == 203
    _, text = both["text"]
    assert text.text == TEXT
    _, gzipped = both["gzip"]
    assert gzipped.content == GZIPPED_TEXT  # decoded as requests would
    _, latin = both["latin"]
    assert latin.text == "café"
    assert latin.content == "café".encode("latin-1")
    _, no_charset = both["no-charset"]
    assert no_charset.content == b"plain \xe9"
    _, mirrored = both["binary-body"]
    assert mirrored.content == BINARY
    _, latin_body = both["latin-body"]
    assert latin_body.content == "café".encode("latin-1")
    _, head = both["head"]
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(TEXT.encode()))
    _, posted = both["post-json"]
    assert posted.json()["json"] == {"é": [1, None, 2.5], "nested": {"k": "v"}}
    _, form = both["form"]
    assert form.json()["form"] == {"a": ["1"], "b": ["é"]}
    _, files = both["files"]
    assert files.json()["files"]["f"]["filename"] == "a.bin"


def test_cookies_from_repeated_set_cookie_in_the_json_format(server: Server) -> None:
    with server.session("json") as s:
        r = s.get(server.base + "/cookies/set")
    assert len(r.raw.headers.getlist("Set-Cookie")) == 3
    assert dict(r.cookies) == {"flavour": "oatmeal", "colour": "blue", "token": "abc123"}
    assert s.cookies.get("flavour") == "oatmeal"
    assert s.cookies.get("token") == "abc123"


# --------------------------------------------------------------------------------------
# depends_on=
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_depends_on_runs_a_request_after_its_dependency(server: Server, fmt: Format) -> None:
    base = server.base
    with server.session(fmt) as s:
        write = s.patch(f"{base}/people/dep-{fmt}/", json={"step": 1})
        read = s.get(f"{base}/people/dep-{fmt}/", depends_on=[write])
        again = s.request("GET", f"{base}/people/dep-{fmt}/", depends_on=(r for r in [read]))
    assert write.status_code == read.status_code == again.status_code == 200
    assert read.json() == again.json() == {"name": f"dep-{fmt}", "step": 1}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_dependency_is_a_424_response(server: Server, fmt: Format) -> None:
    base = server.base
    with server.session(fmt) as s:
        failing = s.get(f"{base}/status/500")
        never = s.patch(f"{base}/people/never-{fmt}/", json={"x": 1}, depends_on=[failing])  # type: ignore[call-arg]
        chained = s.delete(f"{base}/people/alice/", depends_on=[never])  # type: ignore[call-arg]
        independent = s.get(f"{base}/text")
    assert failing.status_code == 500
    for response in (never, chained):
        assert response.status_code == 424
        assert response.reason == "Failed Dependency"
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == 424
        with pytest.raises(requests.HTTPError):
            response.raise_for_status()
    assert f"never-{fmt}" not in server.state.people
    assert independent.status_code == 200


@pytest.mark.parametrize("fmt", FORMATS)
def test_depends_on_outside_the_batch_is_refused_when_queued(server: Server, fmt: Format) -> None:
    base = server.base
    with server.session(fmt) as s:
        earlier = s.get(f"{base}/text")
    with server.session("json") as other:
        foreign = other.get(f"{base}/text")
    with server.session(fmt) as s:
        first = s.get(f"{base}/text")
        for outsider in (earlier, foreign, requests.Response()):
            with pytest.raises(ValueError, match="depends_on"):
                s.get(f"{base}/echo", depends_on=[first, outsider])
        assert s.pending == 1  # nothing was queued by the refused calls
        last = s.get(f"{base}/echo", depends_on=[first])
    assert (first.status_code, last.status_code) == (200, 200)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_client_prefer_header_stops_on_error(server: Server, fmt: Format) -> None:
    base = server.base
    with server.session(fmt) as s:
        s.headers["Prefer"] = "continue-on-error=false"
        ok = s.get(f"{base}/text")
        failing = s.get(f"{base}/status/404")
        skipped = s.patch(f"{base}/people/skipped-{fmt}/", json={"x": 1})
    assert (ok.status_code, failing.status_code, skipped.status_code) == (200, 404, 424)
    assert f"skipped-{fmt}" not in server.state.people


# --------------------------------------------------------------------------------------
# Bodies the JSON format cannot carry are refused when queued
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": b"raw bytes"},
        {"data": "a str"},
        {"data": iter([b"chunk"])},
        {"data": b'{"a": 1}'},  # JSON without saying so
    ],
)
def test_a_json_format_body_without_content_type_is_refused_when_queued(
    server: Server, kwargs: dict[str, Any]
) -> None:
    with server.session("json") as s:
        kept = s.get(server.base + "/text")
        with pytest.raises(ValueError, match="Content-Type"):
            s.post(server.base + "/mirror", **kwargs)
        assert s.pending == 1
    assert kept.status_code == 200


def test_the_multipart_format_carries_a_body_without_content_type(server: Server) -> None:
    with server.session("multipart") as s:
        r = s.post(server.base + "/mirror", data=b"raw bytes")
    assert r.content == b"raw bytes"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"a": 1', "application/json"),
        (b"\xff\xfe not text", "text/plain; charset=utf-8"),
    ],
)
def test_a_json_format_body_that_is_not_what_its_type_says_is_refused_when_queued(
    server: Server, data: bytes, content_type: str
) -> None:
    with server.session("json") as s, pytest.raises(ValueError, match="JSON batch format"):
        s.post(server.base + "/mirror", data=data, headers={"Content-Type": content_type})


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"null", "application/json"),
        (b"0", "application/json"),
        (b'""', "application/json"),
        (b"[]", "application/json"),
        (b"false", "application/merge-patch+json"),
        (b'  {"spaced" :  true}\n', "application/json"),
    ],
)
def test_json_request_bodies_of_every_kind_reach_the_app(
    server: Server, data: bytes, content_type: str
) -> None:
    with server.session("json") as s:
        r = s.post(server.base + "/mirror", data=data, headers={"Content-Type": content_type})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == content_type
    assert r.content  # the app received a body
    assert json.loads(r.content) == json.loads(data)


def test_a_response_with_an_odd_content_type_does_not_fail_the_batch(server: Server) -> None:
    """A view's Content-Type with a parameter the format cannot parse: multipart carries it
    as it is, and the JSON format must still answer that request (and the others)."""
    responses = {}
    for fmt in FORMATS:
        with server.session(fmt) as s:
            odd = s.get(server.base + "/odd-type")
            fine = s.get(server.base + "/text")
        responses[fmt] = (odd, fine)
    for odd, fine in responses.values():
        assert odd.status_code == 200
        assert odd.content == b"odd"
        assert odd.headers["Content-Type"] == "text/plain; charset"
        assert fine.text == TEXT


def test_a_format_other_than_multipart_or_json_is_refused_when_set() -> None:
    with pytest.raises(ValueError, match="format must be 'multipart' or 'json', not 'xml'"):
        Batching("http://api.test/batch", format="xml")  # type: ignore[arg-type]
    session = Batching("http://api.test/batch")
    session.format = "json"
    assert session.format == "json"
    with pytest.raises(ValueError, match="not 'XML'"):
        session.format = "XML"  # type: ignore[assignment]
    assert session.format == "json"
