"""End to end: ``Batching`` (a ``requests.Session``) against a real server on 127.0.0.1.

Why: the client promises that a batched response is the ``requests.Response`` a plain call
would have given, filled in when the batch returns. So these tests compare with what the
views say they received, and with plain ``requests`` calls to the same URLs, over a socket.
"""

from __future__ import annotations

import base64
import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests

from flask_batch.client import (
    BatchFailed,
    Batching,
    BatchNotSent,
    BatchResponse,
    UnsentRequestsWarning,
)
from tests.client_app import (
    BINARY,
    GZIPPED_TEXT,
    NOT_A_BATCH_ENDPOINT,
    TEXT,
    State,
    create_app,
)
from tests.fake_batch import BASE, BATCH_URL, FakeEndpoint, RequestsAdapter
from tests.servers import live_server


@dataclass(frozen=True)
class Server:
    base: str
    state: State

    @property
    def batch_url(self) -> str:
        return self.base + "/batch"

    def session(self, route: str = "/batch", **options: Any) -> Batching:
        return Batching(self.base + route, timeout=10, **options)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    state = State()
    with live_server(create_app(state)) as base:
        yield Server(base, state)


def direct(method: str, url: str, **kwargs: Any) -> requests.Response:
    """The same call made without batching: the oracle."""
    with requests.Session() as session:
        return session.request(method, url, timeout=10, **kwargs)


def b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def header(echo: dict[str, Any], name: str) -> str | None:
    """A header as the echo view received it."""
    values = [value for key, value in echo["headers"] if key.lower() == name.lower()]
    assert len(values) <= 1, values
    return values[0] if values else None


# --------------------------------------------------------------------------------------
# The seed example from the DESIGN, as written
# --------------------------------------------------------------------------------------


def test_the_alpha_seed_example_works_as_written(server: Server) -> None:
    base = server.base
    with Batching(base + "/batch") as s:
        alice = s.patch(base + "/people/alice/", json={"age": 31})
        bob = s.patch(base + "/people/bob/", json={"age": 40})
    assert (alice.status_code, alice.json()) == (200, {"name": "alice", "age": 31})
    assert (bob.status_code, bob.json()) == (200, {"name": "bob", "age": 40})
    assert server.state.people["alice"] == {"name": "alice", "age": 31}


# --------------------------------------------------------------------------------------
# The Response attributes
# --------------------------------------------------------------------------------------


def test_binary_response_has_exact_bytes_status_reason_and_headers(server: Server) -> None:
    url = server.base + "/binary"
    with server.session() as s:
        r = s.get(url)
    assert isinstance(r, BatchResponse)
    assert isinstance(r, requests.Response)
    assert r.status_code == 203
    assert r.reason == "Binary Is Fine"
    assert r.ok is True
    assert r.content == BINARY
    assert r.headers["Content-Length"] == str(len(BINARY))
    # Case-insensitive, whatever case the view used.
    assert r.headers["content-type"] == r.headers["CONTENT-TYPE"] == "application/octet-stream"
    assert r.headers["x-custom"] == "One"
    assert r.headers["X-Lower"] == "two"
    assert r.links == {"next": {"url": "/binary?page=2", "rel": "next"}}
    r.raise_for_status()
    assert r.url == url
    assert isinstance(r.request, requests.PreparedRequest)
    assert r.request.method == "GET"
    assert r.request.url == url
    assert isinstance(r.elapsed, timedelta)
    with pytest.raises(requests.JSONDecodeError):
        r.json()
    plain = direct("GET", url)
    assert (r.status_code, r.reason, r.content, r.encoding) == (
        plain.status_code,
        plain.reason,
        plain.content,
        plain.encoding,
    )
    for name in ("Content-Type", "Content-Length", "X-Custom", "X-Lower", "Link"):
        assert r.headers[name] == plain.headers[name]


def test_binary_response_can_be_streamed_in_chunks(server: Server) -> None:
    with server.session() as s:
        r = s.get(server.base + "/binary")
    assert b"".join(r.iter_content(chunk_size=7)) == BINARY


def test_large_bodies_go_and_come_back_exact_beside_small_ones(server: Server) -> None:
    # 90 KB each way: the server's reader hands the request's buffer over (no copy), and so
    # does the client's reader with the answer; the parts around them read as usual.
    data = BINARY * 300
    with server.session() as s:
        before = s.get(server.base + "/binary")
        mirrored = s.post(
            server.base + "/mirror", data=data, headers={"Content-Type": "application/octet-stream"}
        )
        after = s.get(server.base + "/binary")
    assert [r.status_code for r in (before, mirrored, after)] == [203, 200, 203]
    assert mirrored.content == data
    assert type(mirrored.content) is bytes
    assert before.content == after.content == BINARY


def test_binary_request_body_reaches_the_view_and_comes_back_exact(server: Server) -> None:
    with server.session() as s:
        mirrored = s.post(
            server.base + "/mirror",
            data=BINARY,
            headers={"Content-Type": "application/octet-stream"},
        )
        echoed = s.put(server.base + "/echo/bytes", data=BINARY)
    assert mirrored.status_code == 200
    assert mirrored.content == BINARY
    assert mirrored.headers["Content-Type"] == "application/octet-stream"
    body = echoed.json()
    assert body["method"] == "PUT"
    assert b64decode(body["body"]) == BINARY
    assert header(body, "Content-Length") == str(len(BINARY))


@pytest.mark.parametrize(
    ("path", "encoding", "text"),
    [
        ("/text", "utf-8", TEXT),
        ("/latin", "ISO-8859-1", "café"),
        ("/no-charset", "ISO-8859-1", "plain é"),
    ],
)
def test_text_and_encoding_are_what_requests_gives(
    server: Server, path: str, encoding: str, text: str
) -> None:
    with server.session() as s:
        r = s.get(server.base + path)
    assert r.encoding == encoding
    assert r.text == text
    plain = direct("GET", server.base + path)
    assert (r.encoding, r.text, r.content) == (plain.encoding, plain.text, plain.content)


def test_json_response_decodes(server: Server) -> None:
    with server.session() as s:
        r = s.get(server.base + "/echo/json")
    assert r.headers["Content-Type"] == "application/json"
    assert r.encoding == direct("GET", server.base + "/echo/json").encoding
    assert r.json()["path"] == "/echo/json"
    assert r.json()["method"] == "GET"


@pytest.mark.parametrize(
    ("path", "status", "reason", "message"),
    [
        ("/status/404", 404, "NOT FOUND", "404 Client Error: NOT FOUND for url: "),
        ("/no/such/route", 404, "NOT FOUND", "404 Client Error: NOT FOUND for url: "),
        ("/status/500", 500, "INTERNAL SERVER ERROR", "500 Server Error: "),
        ("/boom", 500, "INTERNAL SERVER ERROR", "500 Server Error: "),
    ],
)
def test_error_parts_raise_for_status_like_requests(
    server: Server, path: str, status: int, reason: str, message: str
) -> None:
    url = server.base + path
    with server.session() as s:
        failed = s.get(url)
        fine = s.get(server.base + "/echo/after-the-error")
    assert failed.status_code == status
    assert failed.reason == reason
    assert failed.ok is False
    with pytest.raises(requests.HTTPError, match=message) as info:
        failed.raise_for_status()
    assert info.value.response is failed
    assert url in str(info.value)
    # One part failing changes nothing for the others.
    assert fine.status_code == 200
    assert fine.json()["path"] == "/echo/after-the-error"
    plain = direct("GET", url)
    assert (failed.status_code, failed.reason, failed.content) == (
        plain.status_code,
        plain.reason,
        plain.content,
    )


def test_a_redirect_is_returned_as_it_is(server: Server) -> None:
    with server.session() as s:
        r = s.get(server.base + "/redirect")
        not_followed = s.get(server.base + "/redirect", allow_redirects=False)
        head = s.head(server.base + "/redirect")
        options = s.options(server.base + "/redirect")
    for response in (r, not_followed, head):
        assert response.status_code == 302
        assert response.headers["Location"] == "/echo/target"
        assert response.is_redirect is True
        assert response.history == []
    assert options.status_code == 200


# --------------------------------------------------------------------------------------
# Per-request transport arguments: honoured, or refused (#11)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"allow_redirects": True}, "allow_redirects=True cannot be honoured in a batch"),
        ({"proxies": {"http": "http://proxy.test:3128"}}, "set session.proxies instead"),
        ({"verify": False}, "set session.verify instead"),
        ({"verify": "/etc/ssl/other.pem"}, "set session.verify instead"),
        ({"cert": "client.pem"}, "set session.cert instead"),
    ],
)
def test_a_transport_argument_a_batch_cannot_honour_is_refused_when_queued(
    server: Server, arguments: dict[str, Any], message: str
) -> None:
    url = server.base + "/echo/refused"
    with server.session() as s:
        with pytest.raises(ValueError, match=message):
            s.get(url, **arguments)
        with pytest.raises(ValueError, match=message):
            s.send(requests.Request("GET", url).prepare(), **arguments)
        assert s.pending == 0


def test_transport_arguments_that_agree_with_the_batch_request_are_accepted(
    server: Server,
) -> None:
    with server.session() as s:
        s.proxies = {"http": "http://proxy.test:3128"}
        s.trust_env = False
        agreeing = {"verify": True, "cert": None, "proxies": s.proxies, "allow_redirects": False}
        r = s.get(server.base + "/echo/agreed", **agreeing)
        s.proxies = {}  # the batch goes straight to the server
    assert r.json()["path"] == "/echo/agreed"


def test_send_refuses_arguments_it_does_not_know(server: Server) -> None:
    with server.session() as s, pytest.raises(TypeError, match="unexpected keyword"):
        s.send(requests.Request("GET", server.base + "/echo").prepare(), retries=3)


def test_stream_true_leaves_the_body_in_raw_as_plain_requests_does(server: Server) -> None:
    url = server.base + "/binary"
    plain = direct("GET", url, stream=True)
    with server.session() as s:
        r = s.get(url, stream=True)
        gzipped = s.get(server.base + "/gzip", stream=True)
    # What raw gave is not in content: it reads what remains, as a streamed response does.
    assert r.raw.read(10) == plain.raw.read(10) == BINARY[:10]
    assert r.content == plain.content == BINARY[10:]
    # raw is the body as it came, still gzipped.
    assert gzipped.raw.read() == direct("GET", server.base + "/gzip", stream=True).raw.read()
    assert gzipped.raw.read() == b""


def test_stream_true_on_the_session_streams_every_response(server: Server) -> None:
    with server.session() as s:
        s.stream = True
        r = s.get(server.base + "/binary")
    assert b"".join(r.iter_content(100)) == BINARY
    assert r.raw.read() == b""  # iter_content read it from raw


def test_gzip_body_is_decompressed_like_plain_requests(server: Server) -> None:
    with server.session() as s:
        r = s.get(server.base + "/gzip")
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.content == GZIPPED_TEXT
    assert r.text == GZIPPED_TEXT.decode("utf-8")
    plain = direct("GET", server.base + "/gzip")
    assert r.content == plain.content
    assert r.headers["Content-Length"] == plain.headers["Content-Length"]


def test_gzip_body_decompresses_when_streamed(server: Server) -> None:
    with server.session() as s:
        r = s.get(server.base + "/gzip")
    assert b"".join(r.iter_content(chunk_size=100)) == GZIPPED_TEXT


def test_a_body_its_framing_contradicts_reads_as_plain_requests_would_read_it(
    server: Server,
) -> None:
    with server.session("/fake/odd-framing") as s:
        as_declared, cut_short, zipped, not_zipped, no_content = (
            s.get(f"{server.base}/echo/{index}") for index in range(5)
        )
    assert as_declared.content == b"hello"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _ = cut_short.content
    assert zipped.content == b"zipped"
    with pytest.raises(requests.exceptions.ContentDecodingError):
        _ = not_zipped.content
    assert no_content.status_code == 204
    assert no_content.content == b""


# --------------------------------------------------------------------------------------
# Cookies and repeated headers
# --------------------------------------------------------------------------------------


def test_repeated_set_cookie_headers_all_arrive_and_are_sent_back(server: Server) -> None:
    s = server.session()
    with s:
        r = s.get(server.base + "/cookies/set")
    set_cookies = r.raw.headers.getlist("Set-Cookie")
    assert len(set_cookies) == 3
    assert [value.split(";")[0] for value in set_cookies] == [
        "flavour=oatmeal",
        "colour=blue",
        "token=abc123",
    ]
    assert "HttpOnly" in set_cookies[1]
    expected = {"flavour": "oatmeal", "colour": "blue", "token": "abc123"}
    assert r.cookies.get_dict() == expected
    assert s.cookies.get_dict() == expected
    # As requests folds repeated headers into one value.
    assert (
        r.headers["Set-Cookie"] == direct("GET", server.base + "/cookies/set").headers["Set-Cookie"]
    )

    with s:
        again = s.get(server.base + "/echo/cookies")
    assert again.json()["cookies"] == expected
    cookie_header = again.request.headers["Cookie"]
    assert sorted(cookie_header.split("; ")) == sorted(f"{k}={v}" for k, v in expected.items())


# --------------------------------------------------------------------------------------
# What the requests send
# --------------------------------------------------------------------------------------


def test_json_data_files_params_headers_and_auth_reach_the_views(server: Server) -> None:
    base = server.base
    upload = BINARY
    params = {"q": "café ☕ & more", "tag": ["a", "b"]}
    with server.session() as s:
        as_json = s.post(base + "/echo/json", json={"name": "Zoë", "tags": ["a", "b"], "n": 1})
        as_text = s.post(base + "/echo/text", data="a=1&b=zwei Wörter ☕")
        as_bytes = s.post(
            base + "/echo/bytes", data=b"\x00\xff raw", headers={"Content-Type": "x/y"}
        )
        as_form = s.post(base + "/echo/form", data={"city": "Zürich", "tag": ["x", "y"]})
        as_files = s.post(
            base + "/echo/files",
            data={"field": "value"},
            files={"upload": ("blob.bin", upload, "application/octet-stream")},
        )
        with_params = s.get(base + "/echo/params", params=params)
        with_headers = s.get(base + "/echo/headers", headers={"X-Trace": "abc", "Accept": "x/y"})
        with_auth = s.get(base + "/echo/auth", auth=("aladdin", "open sesame"))

    echo = as_json.json()
    assert echo["method"] == "POST"
    assert echo["json"] == {"name": "Zoë", "tags": ["a", "b"], "n": 1}
    assert header(echo, "Content-Type") == "application/json"

    echo = as_text.json()
    # As requests with urllib3 2 sends a str body: UTF-8.
    assert b64decode(echo["body"]) == "a=1&b=zwei Wörter ☕".encode()
    assert header(echo, "Content-Length") == str(len("a=1&b=zwei Wörter ☕".encode()))

    echo = as_bytes.json()
    assert b64decode(echo["body"]) == b"\x00\xff raw"
    assert header(echo, "Content-Type") == "x/y"

    echo = as_form.json()
    assert echo["form"] == {"city": ["Zürich"], "tag": ["x", "y"]}
    assert header(echo, "Content-Type") == "application/x-www-form-urlencoded"

    echo = as_files.json()
    assert echo["form"] == {"field": ["value"]}
    assert echo["files"]["upload"]["filename"] == "blob.bin"
    assert echo["files"]["upload"]["content_type"] == "application/octet-stream"
    assert b64decode(echo["files"]["upload"]["content"]) == upload
    assert (header(echo, "Content-Type") or "").startswith("multipart/form-data; boundary=")

    echo = with_params.json()
    assert echo["args"] == {"q": ["café ☕ & more"], "tag": ["a", "b"]}
    assert echo["path"] == "/echo/params"
    assert with_params.url == with_params.request.url
    assert with_params.url == direct("GET", base + "/echo/params", params=params).url
    assert "q=caf%C3%A9+%E2%98%95+%26+more&tag=a&tag=b" in with_params.url

    echo = with_headers.json()
    assert header(echo, "X-Trace") == "abc"
    assert header(echo, "Accept") == "x/y"
    assert header(echo, "User-Agent") == requests.utils.default_user_agent()

    echo = with_auth.json()
    assert echo["auth"] == ["basic", "aladdin", "open sesame"]


def test_a_part_carries_none_of_the_headers_of_the_batch_connection() -> None:
    """Host and the hop-by-hop headers describe the batch request's connection: no part
    carries them, as with the httpx transports (a part's Content-Length is its own)."""
    endpoint = FakeEndpoint()
    with Batching(BATCH_URL) as s:
        s.mount(BASE, RequestsAdapter(endpoint))
        s.post(
            f"{BASE}/a",
            data=b"body",
            headers={"Host": "api.test", "Connection": "close", "X-Kept": "1"},
        )
    (part,) = endpoint.parts[0]
    headers = {name.lower(): value for name, value in part.headers}
    assert headers["x-kept"] == "1"
    assert headers["content-length"] == "4"
    assert not headers.keys() & {"host", "connection", "keep-alive"}


def test_file_and_generator_bodies_are_sent_whole(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"first,"
        yield b""
        yield b"second"

    with server.session() as s:
        from_file = s.post(server.base + "/mirror", data=io.BytesIO(BINARY))
        from_generator = s.post(server.base + "/echo/generator", data=chunks())
    assert from_file.content == BINARY
    echo = from_generator.json()
    assert b64decode(echo["body"]) == b"first,second"
    assert header(echo, "Content-Length") == "12"
    assert header(echo, "Transfer-Encoding") is None


def test_latin1_header_values_and_encoded_paths_arrive_as_with_plain_requests(
    server: Server,
) -> None:
    url = server.base + "/echo/a%2Fb c/ü?x=1&y=%26"
    headers = {"X-Name": "café"}
    with server.session() as s:
        r = s.get(url, headers=headers)
    echo = r.json()
    plain = direct("GET", url, headers=headers).json()
    assert header(echo, "X-Name") == header(plain, "X-Name") == "café"
    assert echo["path"] == plain["path"] == "/echo/a/b c/ü"
    assert echo["args"] == plain["args"] == {"x": ["1"], "y": ["&"]}
    assert echo["query_string"] == plain["query_string"]


def test_a_slow_batch_times_out_and_leaves_responses_unsent(server: Server) -> None:
    queued: list[requests.Response] = []

    def send() -> None:
        # A timeout is retried like a lost connection (tests/test_client_retry.py): not here.
        with Batching(server.batch_url, timeout=0.2, retries=0) as s:
            queued.append(s.get(server.base + "/slow"))

    with pytest.raises(requests.Timeout):
        send()
    with pytest.raises(BatchNotSent, match="could not be sent"):
        _ = queued[0].status_code


def test_bodiless_get_sends_no_body_and_no_content_headers(server: Server) -> None:
    with server.session() as s:
        r = s.get(server.base + "/echo/plain")
    echo = r.json()
    assert echo["method"] == "GET"
    assert echo["body"] == ""
    assert header(echo, "Content-Length") in (None, "0")
    assert header(echo, "Content-Type") is None
    assert echo["args"] == {}


def test_head_has_empty_content_and_the_get_content_length(server: Server) -> None:
    with server.session() as s:
        head = s.head(server.base + "/binary")
        get = s.get(server.base + "/binary")
    assert head.status_code == 203
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(BINARY))
    assert get.content == BINARY
    plain = direct("HEAD", server.base + "/binary")
    assert (head.content, head.headers["Content-Length"]) == (
        plain.content,
        plain.headers["Content-Length"],
    )


def test_delete_put_and_request_method(server: Server) -> None:
    server.state.people["carol"] = {"name": "carol"}
    with server.session() as s:
        deleted = s.delete(server.base + "/people/carol/")
        put = s.put(server.base + "/echo/put", json=[1, 2])
        options = s.request("OPTIONS", server.base + "/echo/options")
        patched = s.request("PATCH", server.base + "/echo/patch", data=b"p")
    assert deleted.status_code == 204
    assert deleted.reason == "NO CONTENT"
    assert deleted.content == b""
    assert deleted.text == ""
    assert "carol" not in server.state.people
    assert (put.json()["method"], put.json()["json"]) == ("PUT", [1, 2])
    assert options.status_code == 200
    assert options.json()["method"] == "OPTIONS"
    assert (patched.json()["method"], b64decode(patched.json()["body"])) == ("PATCH", b"p")


# --------------------------------------------------------------------------------------
# Before the batch is sent
# --------------------------------------------------------------------------------------


def test_reading_before_the_batch_is_sent_raises_a_helpful_error(server: Server) -> None:
    with server.session() as s:
        r = s.get(server.base + "/echo/early")
        assert repr(r) == "<BatchResponse [pending]>"
        assert s.pending == 1
        # Calling json() or raise_for_status() fails already when they are looked up.
        for name in (
            "status_code",
            "reason",
            "headers",
            "content",
            "text",
            "json",
            "ok",
            "raise_for_status",
            "encoding",
            "cookies",
            "raw",
            "elapsed",
            "iter_content",
        ):
            with pytest.raises(BatchNotSent, match=r"send_batch\(\)") as info:
                getattr(r, name)
            assert "with Batching" in str(info.value)
        # What is known at queue time is readable.
        assert r.url == server.base + "/echo/early"
        assert r.request.method == "GET"
    # Filled, it prints as every requests.Response does (the alpha's README shows this).
    assert repr(r) == "<Response [200]>" == repr(direct("GET", server.base + "/echo/early"))
    assert r.status_code == 200


# --------------------------------------------------------------------------------------
# send_batch, several batches, empty batches
# --------------------------------------------------------------------------------------


def test_send_batch_without_with_returns_the_responses_in_order(server: Server) -> None:
    posts = server.state.posts("/batch")
    s = server.session()
    try:
        queued = [s.get(f"{server.base}/echo/{index}") for index in range(12)]
        queued.append(s.post(server.base + "/echo/last", json={"last": True}))
        assert s.pending == 13
        sent = s.send_batch()
        assert s.pending == 0
        assert sent == queued
        assert all(a is b for a, b in zip(sent, queued, strict=True))
        assert [r.json()["path"] for r in sent] == [
            *(f"/echo/{index}" for index in range(12)),
            "/echo/last",
        ]
        assert sent[-1].json()["json"] == {"last": True}
        assert server.state.posts("/batch") == posts + 1

        # A second batch on the same session.
        second = s.get(server.base + "/echo/second")
        assert s.send_batch() == [second]
        assert second.json()["path"] == "/echo/second"
        assert server.state.posts("/batch") == posts + 2

        # Nothing queued: nothing sent.
        assert s.send_batch() == []
        assert server.state.posts("/batch") == posts + 2
    finally:
        s.close()


def test_an_empty_with_block_sends_nothing(server: Server) -> None:
    posts = server.state.posts("/batch")
    with server.session():
        pass
    assert server.state.posts("/batch") == posts


def test_the_same_session_can_run_several_with_blocks(server: Server) -> None:
    s = server.session()
    with s:
        first = s.get(server.base + "/echo/one")
    with s:
        second = s.get(server.base + "/echo/two")
    assert first.json()["path"] == "/echo/one"
    assert second.json()["path"] == "/echo/two"


def _raise_inside_the_block(server: Server, queued: list[requests.Response]) -> None:
    with server.session() as s:
        queued.append(s.get(server.base + "/echo/never"))
        queued.append(s.post(server.base + "/echo/never", json={}))
        raise KeyError("the caller failed")


def test_an_exception_in_the_with_block_sends_nothing(server: Server) -> None:
    posts = server.state.posts("/batch")
    queued: list[requests.Response] = []
    with pytest.raises(KeyError, match="the caller failed"):
        _raise_inside_the_block(server, queued)
    assert server.state.posts("/batch") == posts
    assert len(queued) == 2
    for r in queued:
        with pytest.raises(BatchNotSent, match="raised"):
            _ = r.status_code
        assert repr(r) == "<BatchResponse [pending]>"


def test_closing_a_session_with_requests_queued_warns_and_sends_nothing(server: Server) -> None:
    posts = server.state.posts("/batch")
    s = server.session()
    created = s.post(server.base + "/people/erin/", json={"age": 3})
    fetched = s.get(server.base + "/echo/never")
    with pytest.warns(UnsentRequestsWarning) as warned:
        s.close()
    (warning,) = warned
    assert str(warning.message) == (
        "the Batching session was closed before send_batch(): 2 queued requests were never "
        f"sent (POST {server.base}/people/erin/, GET {server.base}/echo/never)"
    )
    assert warning.filename == __file__  # it points at the close() call
    assert s.pending == 0
    for r in (created, fetched):
        with pytest.raises(BatchNotSent, match="session was closed before send_batch"):
            _ = r.status_code
    s.close()  # nothing left to warn about
    assert server.state.posts("/batch") == posts
    assert "erin" not in server.state.people


def test_a_session_garbage_collected_with_requests_queued_warns(server: Server) -> None:
    sessions = [server.session()]
    r = sessions[0].post(server.base + "/echo/never", json={})
    with pytest.warns(UnsentRequestsWarning, match=r"garbage-collected .* 1 queued request was"):
        sessions.clear()  # the last reference: collected now
    with pytest.raises(BatchNotSent, match="garbage-collected"):
        _ = r.status_code


def test_the_unsent_warning_names_three_requests_and_counts_the_rest(server: Server) -> None:
    s = server.session()
    for index in range(5):
        s.get(f"{server.base}/echo/{index}")
    with pytest.warns(UnsentRequestsWarning, match=r"/echo/2 and 2 more\)$"):
        s.close()


# --------------------------------------------------------------------------------------
# Matching answers to requests
# --------------------------------------------------------------------------------------


def test_answers_reversed_with_content_ids_still_reach_their_requests(server: Server) -> None:
    paths = [f"/echo/{index}" for index in range(5)]
    with server.session("/fake/reversed") as s:
        responses = [s.get(server.base + path) for path in paths]
    assert [r.json()["answer_to"] for r in responses] == paths
    assert [r.headers["X-Answer-To"] for r in responses] == paths


def test_answers_without_content_ids_are_matched_by_position(server: Server) -> None:
    paths = [f"/echo/{index}" for index in range(4)]
    with server.session("/fake/no-ids") as s:
        responses = [s.get(server.base + path) for path in paths]
    assert [r.json()["answer_to"] for r in responses] == paths


def test_a_content_id_answered_twice_fails_the_batch(server: Server) -> None:
    """Which answer is the first request's cannot be told: none is picked."""
    queued: list[requests.Response] = []
    with pytest.raises(BatchFailed, match=r"answered Content-ID <\S+\+0> twice") as info:
        _send_three(server, "/fake/duplicate-id", queued)
    assert info.value.requests == [r.request for r in queued]
    assert info.value.response is not None
    assert info.value.response.status_code == 200
    for r in queued:
        with pytest.raises(BatchNotSent, match="twice"):
            _ = r.status_code


def _send_three(
    server: Server, route: str, queued: list[requests.Response], **options: Any
) -> None:
    with server.session(route, **options) as s:
        queued.extend(s.get(f"{server.base}/echo/{index}") for index in range(3))


def test_a_missing_answer_fails_its_request_and_fills_the_others(server: Server) -> None:
    queued: list[requests.Response] = []
    with pytest.raises(BatchFailed, match="no part for 1 of 3 requests") as info:
        _send_three(server, "/fake/drop-second", queued)
    first, second, third = queued
    assert info.value.requests == [second.request]
    assert info.value.response is not None
    assert info.value.response.status_code == 200
    assert first.json()["answer_to"] == "/echo/0"
    assert third.json()["answer_to"] == "/echo/2"
    with pytest.raises(BatchNotSent, match="no part for this request"):
        _ = second.status_code


# --------------------------------------------------------------------------------------
# The batch itself fails
# --------------------------------------------------------------------------------------


def test_a_413_batch_is_split_to_the_limit_it_names_and_sent_again(server: Server) -> None:
    posts = server.state.posts("/small")
    queued: list[requests.Response] = []
    _send_three(server, "/small", queued)
    assert [r.json()["path"] for r in queued] == ["/echo/0", "/echo/1", "/echo/2"]
    # A batch refused with 413 is not an attempt: nothing in it ran.
    assert [r.attempts for r in queued if isinstance(r, BatchResponse)] == [1, 1, 1]
    # The refused batch of 3, then 2 + 1 (tests/test_client_split.py has the details).
    assert server.state.posts("/small") == posts + 3


def test_a_413_batch_raises_batch_failed_with_the_problem_when_not_splitting(
    server: Server,
) -> None:
    queued: list[requests.Response] = []
    with pytest.raises(BatchFailed, match="413") as info:
        _send_three(server, "/small", queued, split=False)
    error = info.value
    assert isinstance(error, requests.HTTPError)
    assert error.response is not None
    assert error.response.status_code == 413
    assert error.response.headers["Content-Type"].startswith("application/problem+json")
    problem = error.response.json()
    assert problem["status"] == 413
    assert problem["limit"] == "max_parts"
    assert problem["value"] == 2
    # One line: the problem's own words.
    assert str(error) == f"the batch failed with 413 {error.response.reason}: {problem['detail']}"
    assert error.requests == [r.request for r in queued]
    for r in queued:
        with pytest.raises(BatchNotSent, match="413"):
            _ = r.status_code


def test_a_non_multipart_answer_raises_batch_failed(server: Server) -> None:
    queued: list[requests.Response] = []
    with pytest.raises(BatchFailed, match="application/json, not multipart/mixed") as info:
        _send_three(server, "/fake/json", queued)
    assert info.value.response is not None
    assert info.value.response.status_code == 200
    assert info.value.response.json() == {"answered": "not multipart"}
    assert info.value.requests == [r.request for r in queued]
    for r in queued:
        with pytest.raises(BatchNotSent, match="not multipart/mixed"):
            _ = r.content


@pytest.mark.parametrize(("route", "status", "message"), NOT_A_BATCH_ENDPOINT)
def test_a_url_that_is_not_a_batch_endpoint_is_said_in_one_line(
    server: Server, route: str, status: int, message: str
) -> None:
    """Not the whole HTML error page: the status, the content type and a hint; the page
    stays on the exception."""
    queued: list[requests.Response] = []
    with pytest.raises(BatchFailed) as info:
        _send_three(server, route, queued, retries=0)
    assert str(info.value) == message
    assert info.value.response is not None
    assert info.value.response.status_code == status
    assert info.value.response.text.startswith(("<!doctype html>", "{"))
    with pytest.raises(BatchNotSent) as unsent:
        _ = queued[0].status_code
    assert str(unsent.value) == message


@pytest.mark.parametrize(
    ("route", "said"),
    [
        ("/fake/malformed", "malformed"),
        # urllib3 refuses such a response (InvalidHeader), which escaped send_batch while
        # the responses were filled; now the answer is refused as it is read.
        ("/fake/two-lengths", "part 3: conflicting Content-Length values"),
    ],
)
def test_a_malformed_answer_raises_batch_failed(server: Server, route: str, said: str) -> None:
    queued: list[requests.Response] = []
    with pytest.raises(BatchFailed, match=said) as info:
        _send_three(server, route, queued)
    assert info.value.requests == [r.request for r in queued]
    for r in queued:
        with pytest.raises(BatchNotSent, match="malformed"):
            _ = r.status_code


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_connection_refused_raises_connection_error_and_leaves_responses_unsent() -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    queued: list[requests.Response] = []

    slept: list[float] = []

    def send() -> None:
        with Batching(base + "/batch", timeout=5, sleep=slept.append) as s:
            queued.append(s.get(base + "/anything"))

    with pytest.raises(requests.ConnectionError):
        send()
    (r,) = queued
    with pytest.raises(BatchNotSent, match="could not be sent"):
        _ = r.status_code
    # Retried (3 attempts in all by default) before giving up, with a backoff in between.
    assert isinstance(r, BatchResponse)
    assert r.attempts == 3
    assert len(slept) == 2


# --------------------------------------------------------------------------------------
# Queue-time checks and hooks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/echo",
        "http://127.0.0.1:{other}/echo",
        "https://127.0.0.1:{port}/echo",
        "http://example.com/echo",
    ],
)
def test_a_cross_origin_request_is_refused_at_queue_time(server: Server, url: str) -> None:
    port = int(server.base.rsplit(":", 1)[1])
    posts = server.state.posts("/batch")
    with server.session() as s:
        with pytest.raises(ValueError, match="cannot be batched"):
            s.get(url.format(port=port, other=port + 1))
        assert s.pending == 0
    assert server.state.posts("/batch") == posts


def test_same_origin_spelled_differently_is_accepted(server: Server) -> None:
    port = server.base.rsplit(":", 1)[1]
    with Batching(f"HTTP://127.0.0.1:{port}/batch", timeout=10) as s:
        r = s.get(f"http://127.0.0.1:{port}/echo/case")
    assert r.json()["path"] == "/echo/case"


def test_response_hooks_are_called_with_the_filled_response(server: Server) -> None:
    seen: list[tuple[requests.Response, int, str]] = []

    def hook(r: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append((r, r.status_code, r.json()["path"]))

    with server.session() as s:
        hooked = s.get(server.base + "/echo/hooked", hooks={"response": hook})
        s.get(server.base + "/echo/not-hooked")
        assert seen == []
    assert seen == [(hooked, 200, "/echo/hooked")]
    assert seen[0][0] is hooked


def test_session_hooks_see_each_batched_response_not_the_batch(server: Server) -> None:
    seen: list[str] = []

    def hook(r: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(r.url)

    with server.session() as s:
        s.hooks["response"].append(hook)
        s.get(server.base + "/echo/a")
        s.get(server.base + "/echo/b")
    assert seen == [server.base + "/echo/a", server.base + "/echo/b"]


def test_a_raising_hook_does_not_leave_the_other_answers_unfilled(server: Server) -> None:
    """The common ``raise_for_status`` hook: its error propagates, as with plain requests,
    but the batch was answered, so every response holds its answer."""
    queued: list[requests.Response] = []

    def raise_for_status(r: requests.Response, *args: Any, **kwargs: Any) -> None:
        r.raise_for_status()

    def send() -> None:
        with server.session() as s:
            queued.append(s.get(server.base + "/echo/1", hooks={"response": raise_for_status}))
            queued.append(s.get(server.base + "/status/404", hooks={"response": raise_for_status}))
            queued.append(s.get(server.base + "/echo/3"))

    with pytest.raises(requests.HTTPError, match="404 Client Error"):
        send()
    assert [r.status_code for r in queued] == [200, 404, 200]
    assert queued[2].json()["path"] == "/echo/3"
