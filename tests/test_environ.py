"""The environ of a part, checked against werkzeug.test.EnvironBuilder as the oracle."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder

from flask_batch.part_headers import HeaderRules
from flask_batch.targets import PART_KEY, PartRefused
from flask_batch.wire.model import SubRequest
from flask_batch.wsgi_parts import Dispatcher

ORIGIN = "http://example.com:8080"
# Keys a server sets that must match a direct request exactly.
COMPARED = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "HTTP_HOST",
    "wsgi.url_scheme",
    "wsgi.version",
)


def outer_environ(
    headers: dict[str, str] | None = None, script_root: str = "", path: str = "/batch"
) -> dict[str, Any]:
    builder = EnvironBuilder(
        path=path,
        base_url=ORIGIN + script_root + "/",
        method="POST",
        headers=list((headers or {}).items()),
        data=b"",
        content_type="multipart/mixed; boundary=b",
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    return builder.get_environ()


def direct_environ(**kwargs: Any) -> dict[str, Any]:
    return EnvironBuilder(
        base_url=ORIGIN + kwargs.pop("script_root", "") + "/", **kwargs
    ).get_environ()


def sub(
    target: str, method: str = "GET", headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
) -> SubRequest:
    return SubRequest(method, target, headers, body)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/people/alice", "/people/alice", ""),
        ("/a%2Fb/c%20d?x=1&y=%2F", "/a%2Fb/c%20d", "x=1&y=%2F"),
        ("/caf%C3%A9", "/caf%C3%A9", ""),
        (
            f"{ORIGIN}/storage/v1/b/x/o/dir%2Fa.txt?projection=full",
            "/storage/v1/b/x/o/dir%2Fa.txt",
            "projection=full",
        ),
        ("HTTP://EXAMPLE.com:8080/upper", "/upper", ""),
    ],
)
def test_environ_matches_a_direct_request(target: str, path: str, query: str) -> None:
    environ = Dispatcher(lambda e, s: [], outer_environ()).environ(sub(target), 0)
    expected = direct_environ(path=path, query_string=query)
    for key in COMPARED:
        assert environ[key] == expected[key], key
    # The raw target survives, so an app can tell %2F from /.
    raw = path + (f"?{query}" if query else "")
    assert environ["REQUEST_URI"] == environ["RAW_URI"] == raw
    assert environ[PART_KEY] is True
    assert environ["REMOTE_ADDR"] == "10.1.2.3"


def test_body_and_content_headers_come_from_the_part() -> None:
    body = b'{"age": 31}'
    part = sub("/people/alice", "PATCH", (("Content-Type", "application/json"),), body)
    environ = Dispatcher(lambda e, s: [], outer_environ()).environ(part, 0)
    expected = direct_environ(
        path="/people/alice", method="PATCH", data=body, content_type="application/json"
    )
    assert environ["CONTENT_TYPE"] == expected["CONTENT_TYPE"]
    assert environ["CONTENT_LENGTH"] == expected["CONTENT_LENGTH"] == "11"
    assert environ["wsgi.input"].read() == body
    assert environ["wsgi.input_terminated"] is True


def test_outer_headers_are_inherited_except_content_and_hop_by_hop() -> None:
    outer = outer_environ(
        {
            "Authorization": "Bearer outer",
            "Cookie": "s=1",
            "X-Trace": "t",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "h",
            "Content-Encoding": "identity",
            "Expect": "100-continue",
            "Proxy-Authorization": "secret",
            "Upgrade": "h2c",
        }
    )
    environ = Dispatcher(lambda e, s: [], outer).environ(sub("/x"), 0)
    assert environ["HTTP_AUTHORIZATION"] == "Bearer outer"
    assert environ["HTTP_COOKIE"] == "s=1"
    assert environ["HTTP_X_TRACE"] == "t"
    for key in (
        "HTTP_CONNECTION",
        "HTTP_X_HOP",
        "HTTP_CONTENT_ENCODING",
        "HTTP_EXPECT",
        "HTTP_PROXY_AUTHORIZATION",
        "HTTP_UPGRADE",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
    ):
        assert key not in environ, key


def test_a_part_header_overrides_the_outer_one() -> None:
    outer = outer_environ({"Authorization": "Bearer outer", "Accept": "text/html"})
    part = sub(
        "/x", headers=(("authorization", "Bearer mine"), ("Accept", "a/b"), ("Accept", "c/d"))
    )
    environ = Dispatcher(lambda e, s: [], outer).environ(part, 0)
    assert environ["HTTP_AUTHORIZATION"] == "Bearer mine"
    assert environ["HTTP_ACCEPT"] == "a/b, c/d"


def test_host_is_pinned_and_aliasing_headers_are_dropped() -> None:
    part = sub(
        "/x",
        headers=(
            ("Host", "evil.example"),
            ("X_User", "root"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ),
    )
    environ = Dispatcher(lambda e, s: [], outer_environ()).environ(part, 0)
    assert environ["HTTP_HOST"] == "example.com:8080"
    assert "HTTP_X_USER" not in environ
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


def test_outer_request_objects_do_not_leak_into_parts() -> None:
    outer = outer_environ()
    outer["werkzeug.request"] = object()
    outer["some.server.socket"] = object()
    environ = Dispatcher(lambda e, s: [], outer).environ(sub("/x"), 0)
    assert "werkzeug.request" not in environ
    assert "some.server.socket" not in environ


@pytest.mark.parametrize(
    ("batch_path", "target", "path", "query"),
    [
        ("/batch", "people/alice", "/people/alice", ""),
        ("/odata/$batch", "Employees%2823%29?$top=1", "/odata/Employees%2823%29", "$top=1"),
        ("/odata/$batch", "../other", "/other", ""),
    ],
)
def test_relative_targets_resolve_against_the_batch_url(
    batch_path: str, target: str, path: str, query: str
) -> None:
    environ = Dispatcher(lambda e, s: [], outer_environ(path=batch_path)).environ(sub(target), 0)
    assert environ["REQUEST_URI"] == path + (f"?{query}" if query else "")
    assert environ["QUERY_STRING"] == query


def test_script_name_is_kept_and_stripped_from_the_path() -> None:
    outer = outer_environ(script_root="/api")
    assert outer["SCRIPT_NAME"] == "/api"
    environ = Dispatcher(lambda e, s: [], outer).environ(sub("/api/people"), 0)
    expected = direct_environ(path="/people", script_root="/api")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (expected["SCRIPT_NAME"], "/people")
    assert environ["REQUEST_URI"] == "/api/people"
    relative = Dispatcher(lambda e, s: [], outer).environ(sub("people"), 0)
    assert (relative["SCRIPT_NAME"], relative["PATH_INFO"]) == ("/api", "/people")


@pytest.mark.parametrize(
    ("target", "title"),
    [
        ("http://other.example/x", "Cross-origin sub-request"),
        ("https://example.com:8080/x", "Cross-origin sub-request"),
        ("http://example.com:9999/x", "Cross-origin sub-request"),
        ("http://user:pw@example.com:8080/x", "Cross-origin sub-request"),
        ("*", "Unsupported request target"),
        ("http://[::1/x", "Invalid request target"),
    ],
)
def test_parts_that_leave_the_origin_are_refused_with_400(target: str, title: str) -> None:
    response = Dispatcher(lambda e, s: [], outer_environ())(sub(target), 0)
    assert response.status == 400
    assert title.encode() in response.body


def test_a_path_outside_the_script_root_is_refused() -> None:
    response = Dispatcher(lambda e, s: [], outer_environ(script_root="/api"))(sub("/admin"), 0)
    assert response.status == 400
    assert b"outside this application" in response.body


def test_default_ports_compare_equal() -> None:
    outer = EnvironBuilder(
        path="/batch", base_url="https://example.com/", method="POST"
    ).get_environ()
    environ = Dispatcher(lambda e, s: [], outer).environ(sub("https://EXAMPLE.com:443/x"), 0)
    assert environ["PATH_INFO"] == "/x"
    assert environ["wsgi.url_scheme"] == "https"


class CountingRules(HeaderRules):
    """Header rules that count the header blocks they are asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = 0

    def own_fields(
        self, headers: Iterable[tuple[str, str]], body_length: int
    ) -> tuple[list[tuple[str, str]], str | None]:
        self.blocks += 1
        return super().own_fields(headers, body_length)


def test_a_header_block_the_parts_repeat_is_worked_out_once_per_batch() -> None:
    # Why: the parts of a batch repeat their headers (issue 14: environ per part).
    rules = CountingRules()
    block = (("Accept", "application/json"), ("X-Tag", "a"), ("x-tag", "b"))
    dispatcher = Dispatcher(lambda e, s: [], outer_environ(), rules)
    environs = [
        dispatcher.environ(sub(f"/items/{i}", "PATCH", block, b'{"n": %d}' % i), i)
        for i in range(10)
    ]
    assert rules.blocks == 1
    for i, environ in enumerate(environs):
        assert environ["HTTP_X_TAG"] == "a, b"
        assert environ["HTTP_ACCEPT"] == "application/json"
        assert environ["CONTENT_LENGTH"] == str(len(b'{"n": %d}' % i))
    # The same block without a body says no length; another batch works it out again.
    assert "CONTENT_LENGTH" not in dispatcher.environ(sub("/items/1", "GET", block), 10)
    Dispatcher(lambda e, s: [], outer_environ(), rules).environ(sub("/x", "GET", block), 0)
    assert rules.blocks == 2


def test_a_said_content_length_of_a_repeated_block_is_the_body_s() -> None:
    dispatcher = Dispatcher(lambda e, s: [], outer_environ())
    block = (("Content-Length", "999"),)
    for body in (b"", b"abc", b""):
        assert dispatcher.environ(sub("/x", "POST", block, body), 0)["CONTENT_LENGTH"] == str(
            len(body)
        )


def test_a_pinned_header_is_refused_in_every_part_that_repeats_it() -> None:
    dispatcher = Dispatcher(lambda e, s: [], outer_environ())
    block = (("X-Forwarded-User", "admin"),)
    for index in range(3):
        with pytest.raises(PartRefused, match="X-Forwarded-User"):
            dispatcher.environ(sub("/x", "GET", block), index)


class RecordingApp:
    """A WSGI application that keeps the environ of each call (its input read out)."""

    def __init__(self) -> None:
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen = dict(environ)
        seen["wsgi.input"] = environ["wsgi.input"].read()
        self.environs.append(seen)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


def in_order_batch() -> list[SubRequest]:
    block = (("Accept", "application/json"),)
    return [
        sub(f"/items/{i}", "PATCH" if i % 2 else "GET", block, b"{}" if i % 2 else b"")
        for i in range(40)
    ]


def test_parts_called_in_order_get_the_environs_they_get_one_at_a_time() -> None:
    # Why: their environs are built ahead, 16 at once (issue 14, third round);
    # parts that do not run (settled, groups), a refused one and a request resolved anew
    # (a reference: flask_batch.references) on the way.
    requests = in_order_batch()
    requests[5] = sub("/batch", "POST")  # a nested batch: refused
    resolved = {18: sub("/items/resolved", "GET")}
    called = [0, 1, 2, 5, 7, 17, 18, 19, 33, 34, 39]
    ahead, alone = RecordingApp(), RecordingApp()
    in_order = Dispatcher(ahead, outer_environ(), in_order=requests)
    one_at_a_time = Dispatcher(alone, outer_environ())
    for index in called:
        request = resolved.get(index, requests[index])
        assert in_order(request, index) == one_at_a_time(request, index)
    assert ahead.environs == alone.environs
    assert [e["PATH_INFO"] for e in ahead.environs][5] == "/items/resolved"
    assert len(ahead.environs) == len(called) - 1  # the refused part never ran


class FailingRules(HeaderRules):
    """Header rules that fail on one header, as a bug would."""

    def own_fields(
        self, headers: Iterable[tuple[str, str]], body_length: int
    ) -> tuple[list[tuple[str, str]], str | None]:
        if ("X-Fail", "1") in tuple(headers):
            raise RuntimeError("the rules failed")
        return super().own_fields(headers, body_length)


def test_an_environ_that_fails_ahead_fails_at_its_own_call() -> None:
    requests = in_order_batch()
    requests[3] = sub("/x", "GET", (("X-Fail", "1"),))
    app = RecordingApp()
    dispatcher = Dispatcher(app, outer_environ(), FailingRules(), in_order=requests)
    for index in range(3):
        assert dispatcher(requests[index], index).status == 200
    with pytest.raises(RuntimeError, match="the rules failed"):
        dispatcher(requests[3], 3)
    assert dispatcher(requests[4], 4).status == 200
    assert [e["PATH_INFO"] for e in app.environs] == [
        "/items/0",
        "/items/1",
        "/items/2",
        "/items/4",
    ]
