"""HTTP/1.1 messages inside a part: ``flask_batch.wire.http1``.

Why: the parser is liberal where real batch clients are (docs/design.md section 2: no HTTP
version, OData relative targets, no space after the colon, no Content-Length, extra blank
lines) and strict everywhere else (RFC 9112: no obs-fold, no CR or NUL in values, one
Content-Length, only the chunked Transfer-Encoding and never with a Content-Length), and the
serialiser promises what clients rely on: a
status line with a reason, an exact Content-Length, no hop-by-hop headers, no header injection.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_batch.wire import http1
from flask_batch.wire.errors import BatchError, LimitExceeded, MalformedBatch, reason_phrase
from flask_batch.wire.fields import encode_fields
from flask_batch.wire.http1 import (
    HOP_BY_HOP,
    MAX_CHUNKS,
    parse_request,
    parse_response,
    serialise_request,
    serialise_response,
)
from flask_batch.wire.model import Headers, Limits, SubRequest, SubResponse
from flask_batch.wire.multipart_answers import ResponseWriter

from .properties import PROPERTY

LIMITS = Limits()

Request = tuple[str, str, Headers, bytes | bytearray]


def parse(data: bytes, limits: Limits = LIMITS) -> Request:
    return parse_request(data, limits, 3)


def refused(data: bytes, match: str, limits: Limits = LIMITS) -> MalformedBatch:
    """The MalformedBatch refusing ``data`` as part 3, its message matching ``match``."""
    with pytest.raises(MalformedBatch, match=match) as info:
        parse(data, limits)
    assert info.value.status == 400
    assert info.value.part == 3
    assert info.value.problem()["part"] == 3
    return info.value


def parse_or_refusal(data: bytes) -> Request | MalformedBatch:
    try:
        return parse(data)
    except MalformedBatch as error:
        return error


# --------------------------------------------------------------------------------------------
# Request line


@pytest.mark.parametrize(
    ("line", "method", "target"),
    [
        (b"GET /farm/v1/animals/1?fields=name HTTP/1.1", "GET", "/farm/v1/animals/1?fields=name"),
        (
            b"PATCH http://127.0.0.1:42817/storage/v1/b/x/o/dir%2Fa.txt?projection=full HTTP/1.1",
            "PATCH",
            "http://127.0.0.1:42817/storage/v1/b/x/o/dir%2Fa.txt?projection=full",
        ),
        (b"GET Employees%2823%29 HTTP/1.1", "GET", "Employees%2823%29"),
        (b"GET Employees%2823%29", "GET", "Employees%2823%29"),
        (b"DELETE /a/b", "DELETE", "/a/b"),
        (b"GET / HTTP/1.0", "GET", "/"),
        (b"OPTIONS * HTTP/1.1", "OPTIONS", "*"),
        (b"M-SEARCH /x?a=%20&b=~!$&'()*+,;=:@ HTTP/1.1", "M-SEARCH", "/x?a=%20&b=~!$&'()*+,;=:@"),
    ],
)
@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_request_line_variants(line: bytes, method: str, target: str, newline: bytes) -> None:
    data = line + newline + b"Accept: */*" + newline + newline
    assert parse(data) == (method, target, (("Accept", "*/*"),), b"")


def test_request_line_alone_without_line_end() -> None:
    assert parse(b"GET /x") == ("GET", "/x", (), b"")
    assert parse(b"GET /x HTTP/1.1\r\n") == ("GET", "/x", (), b"")


def test_blank_lines_before_the_request_line_are_ignored() -> None:
    # RFC 9112 section 2.2: a server SHOULD ignore at least one empty line before the request.
    assert parse(b"\r\n\nGET /x HTTP/1.1\r\nA: 1\r\n\r\n") == ("GET", "/x", (("A", "1"),), b"")


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/3.0", b"HTTP/1.2", b"HTTP/0.9"])
def test_unsupported_version(version: bytes) -> None:
    error = refused(b"GET / " + version + b"\r\n\r\n", "unsupported HTTP version")
    assert version.decode() in str(error)


@pytest.mark.parametrize(
    "line",
    [
        b"GET /a b HTTP/1.1",  # space in the target
        b"GET /caf\xe9 HTTP/1.1",  # non-ASCII byte
        b"GET /a\x01b HTTP/1.1",  # control byte
        b"GET /a\x7f HTTP/1.1",
        b"GET /a\tb HTTP/1.1",
        b"GET  / HTTP/1.1",  # two spaces
        b"GET / HTTP/1.1 ",  # trailing space
        b" GET / HTTP/1.1",
        b"GET\t/ HTTP/1.1",
        b"GET / http/1.1",
        b"GET / HTTP/11",
        b"G(T / HTTP/1.1",  # method not a token
        b"G\xc9T / HTTP/1.1",
        b"GET",  # no target
        b"/just/a/path",
        b"GET / HTTP/1.1 extra",
    ],
)
def test_invalid_request_line(line: bytes) -> None:
    refused(line + b"\r\nAccept: */*\r\n\r\n", "invalid HTTP request line")


@pytest.mark.parametrize("data", [b"", b"\r\n", b"\r\n\r\n\n"])
def test_no_request_at_all(data: bytes) -> None:
    refused(data, "no HTTP request")


# --------------------------------------------------------------------------------------------
# Header fields


def test_header_fields_with_and_without_space_after_colon() -> None:
    data = (
        b"POST /x HTTP/1.1\r\n"
        b"Content-Type:application/json\r\n"
        b"X-Spaces:   padded  value \t\r\n"
        b"x-empty:\r\n"
        b"X-Latin: caf\xe9\r\n"
        b"X-Repeat: 1\r\n"
        b"X-Repeat: 2\r\n"
        b"\r\n"
    )
    assert parse(data)[2] == (
        ("Content-Type", "application/json"),
        ("X-Spaces", "padded  value"),
        ("x-empty", ""),
        ("X-Latin", "caf\xe9"),
        ("X-Repeat", "1"),
        ("X-Repeat", "2"),
    )


@pytest.mark.parametrize("fold", [b" continued", b"\tcontinued"])
def test_obs_fold_refused(fold: bytes) -> None:
    refused(b"GET / HTTP/1.1\r\nX-A: one\r\n" + fold + b"\r\n\r\n", "obsolete line folding")


@pytest.mark.parametrize(
    "line",
    [
        b"X-A: a\rb",  # CR inside the value
        b"X-A: a\x00b",  # NUL
        b"X-A: \x00",
        b"X A: 1",  # space inside the name
        b"X-A : 1",  # space before the colon (RFC 9112 section 5.1: MUST reject)
        b": no name",
        b"X@A: 1",
        b"X\xe9: 1",
        b"no colon",
        b"X-A\x00: 1",
    ],
)
def test_invalid_header_line(line: bytes) -> None:
    refused(b"GET / HTTP/1.1\r\nOk: 1\r\n" + line + b"\r\n\r\n", "invalid HTTP header line")


@pytest.mark.parametrize(
    "line",
    [
        b"X-A: a\rX-Injected: 1",
        b"X-A: a\r\rX-Injected: 1",
        b"X-A:\rX-Injected: 1",
    ],
)
def test_bare_cr_never_splits_a_header_field(line: bytes) -> None:
    # RFC 9112 section 2.2: a recipient MUST consider an element with a bare CR invalid, or
    # replace the CR with SP. Reading it as a line end would let a field smuggle another one
    # past whatever checked the part before us.
    result = parse_or_refusal(b"GET / HTTP/1.1\r\nOk: 1\r\n" + line + b"\r\n\r\n")
    if isinstance(result, MalformedBatch):
        assert result.part == 3
    else:
        assert [name for name, _ in result[2]] == ["Ok", "X-A"], result


def test_header_block_at_max_header_size_and_one_more() -> None:
    # The limit counts the request line and header lines with their line ends and the blank
    # line that ends the block; not the body.
    for newline in (b"\r\n", b"\n"):
        head = b"POST /x HTTP/1.1" + newline + b"A: b" + newline + newline
        data = head + b"x" * 1000
        limits = Limits(max_header_size=len(head))
        assert parse(data, limits) == ("POST", "/x", (("A", "b"),), b"x" * 1000)
        with pytest.raises(LimitExceeded) as info:
            parse(data, Limits(max_header_size=len(head) - 1))
        error = info.value
        assert (error.status, error.limit, error.value, error.part) == (
            413,
            "max_header_size",
            len(head) - 1,
            3,
        )
        assert error.problem()["limit"] == "max_header_size"


def test_blank_lines_before_the_request_line_do_not_count_as_header_bytes() -> None:
    head = b"GET / HTTP/1.1\r\n\r\n"
    assert parse(b"\r\n\n" * 10 + head, Limits(max_header_size=len(head)))[:2] == ("GET", "/")


def test_max_headers_exactly_and_one_more() -> None:
    fields = b"".join(b"X-%d: %d\r\n" % (index, index) for index in range(10))
    data = b"GET / HTTP/1.1\r\n" + fields + b"\r\n"
    assert len(parse(data, Limits(max_headers=10))[2]) == 10
    with pytest.raises(LimitExceeded) as info:
        parse(data, Limits(max_headers=9))
    error = info.value
    assert (error.status, error.limit, error.value, error.part) == (413, "max_headers", 9, 3)
    assert error.problem()["limit"] == "max_headers"


def test_header_block_without_line_end_over_the_limit() -> None:
    assert parse(b"GET /abcd", Limits(max_header_size=9)) == ("GET", "/abcd", (), b"")
    with pytest.raises(LimitExceeded):
        parse(b"GET /abcd", Limits(max_header_size=8))
    with pytest.raises(LimitExceeded):
        parse(b"GET / HTTP/1.1\r\nX-A: " + b"a" * 100, Limits(max_header_size=50))


# --------------------------------------------------------------------------------------------
# The body


def with_body(headers: bytes, body: bytes) -> bytes:
    return b"POST /x HTTP/1.1\r\n" + headers + b"\r\n" + body


@pytest.mark.parametrize(
    ("rest", "body"),
    [
        (b"abc", b"abc"),
        (b"abc\r\n", b"abc"),
        (b"abc\r\n\r\n\n", b"abc"),
        (b"abc \t", b"abc"),
    ],
)
def test_content_length_exact_and_trailing_blank_lines(rest: bytes, body: bytes) -> None:
    assert parse(with_body(b"Content-Length: 3\r\n", rest))[3] == body


def test_content_length_bounds_binary_body() -> None:
    body = bytes(range(256))
    data = with_body(b"content-length: 256\r\n", body + b"\r\n")
    assert parse(data)[3] == body


def test_content_length_zero() -> None:
    assert parse(with_body(b"Content-Length: 0\r\n", b"\r\n\r\n"))[3] == b""
    assert parse(with_body(b"Content-Length: 000\r\n", b""))[3] == b""


def test_content_length_larger_than_body() -> None:
    error = refused(with_body(b"Content-Length: 5\r\n", b"abc"), "larger than the body")
    assert "3 bytes" in str(error)


@pytest.mark.parametrize("rest", [b"abcd", b"abc\r\nd", b"abc\r\n\r\nmore"])
def test_content_length_smaller_than_body(rest: bytes) -> None:
    refused(with_body(b"Content-Length: 3\r\n", rest), "longer than its Content-Length")


def test_identical_duplicate_content_lengths_accepted() -> None:
    headers = b"Content-Length: 3\r\ncontent-length: 3\r\n"
    assert parse(with_body(headers, b"abc"))[3] == b"abc"


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 3\r\nContent-Length: 4\r\n",
        b"Content-Length: 4\r\nX: 1\r\nContent-Length: 3\r\n",
    ],
)
def test_conflicting_content_lengths_refused(headers: bytes) -> None:
    refused(with_body(headers, b"abc"), "conflicting Content-Length")


@pytest.mark.parametrize(
    "value", [b"abc", b"-3", b"+3", b"3.0", b"0x3", b"3, 3", b"3 3", b"", b"\xb2", b"\xbd"]
)
def test_invalid_content_length_refused(value: bytes) -> None:
    # "\xb2" is a superscript two: str.isdigit() is True for it, int() would fail.
    refused(with_body(b"Content-Length: " + value + b"\r\n", b"abc"), "invalid Content-Length")


@pytest.mark.parametrize(
    ("rest", "body"),
    [
        (b"line1\r\nline2\r\n", b"line1\r\nline2\r\n"),
        (b"no line end", b"no line end"),
        (b"\r\nleading blank line", b"\r\nleading blank line"),
        (bytes(range(256)), bytes(range(256))),
        (b"", b""),
        (b"\r\n", b""),
        (b"\r\n\r\n\n", b""),
    ],
)
def test_without_content_length_the_body_runs_to_the_end(rest: bytes, body: bytes) -> None:
    assert parse(with_body(b"Content-Type: text/plain\r\n", rest))[3] == body


@pytest.mark.parametrize(
    "data",
    [
        b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n\r\n\r\n",
        b"GET /x HTTP/1.1\nHost: h\n\n\n",
        b"GET /x HTTP/1.1\nHost: h",
        b"GET /x HTTP/1.1\nHost: h\n",
    ],
)
def test_get_followed_by_blank_lines_has_empty_body(data: bytes) -> None:
    assert parse(data) == ("GET", "/x", (("Host", "h"),), b"")


CHUNKED = b"Transfer-Encoding: chunked\r\n"


@pytest.mark.parametrize(
    ("chunked", "body"),
    [
        (b"3\r\nabc\r\n0\r\n\r\n", b"abc"),
        (b"3\r\nabc\r\n0\r\n", b"abc"),  # the part's end stands in for the last CRLF
        (b"3\nabc\nA\n0123456789\n0\n\n", b"abc0123456789"),  # bare LF
        (b"a;name=value\r\n0123456789\r\n1 ; x\r\n\xff\r\n0\r\n\r\n", b"0123456789\xff"),
        (b"0003\r\n\r\n\n\r\n0\r\nX-Trailer: 1\r\n\r\n", b"\r\n\n"),
        (b"0\r\n\r\n", b""),
        (b"3\r\nabc\r\n0\r\n\r\n\r\n\r\n", b"abc"),  # blank lines as after any body
    ],
)
@pytest.mark.parametrize("header", [CHUNKED, b"transfer-encoding:Chunked\r\n"])
def test_chunked_body_is_decoded_and_its_framing_header_removed(
    chunked: bytes, body: bytes, header: bytes
) -> None:
    # Once decoded, Transfer-Encoding is gone: nothing downstream sees a body framed twice.
    assert parse(with_body(header, chunked)) == ("POST", "/x", (), body)
    assert parse(with_body(b"X-A: 1\r\n" + header + b"X-B: 2\r\n", chunked)) == (
        "POST",
        "/x",
        (("X-A", "1"), ("X-B", "2")),
        body,
    )


@pytest.mark.parametrize(
    ("chunked", "match"),
    [
        (b"3\r\nabc\r\n", "invalid chunk size line"),  # no last chunk
        (b"", "invalid chunk size line"),
        (b"x\r\nabc\r\n0\r\n\r\n", "invalid chunk size line"),
        (b"-3\r\nabc\r\n0\r\n\r\n", "invalid chunk size line"),
        (b" 3\r\nabc\r\n0\r\n\r\n", "invalid chunk size line"),
        (b"10000000000000000\r\n", "invalid chunk size line"),  # more than 16 hex digits
        (b"FFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n", "past the end"),
        (b"5\r\nabc", "past the end"),
        (b"3\r\nabcd\r\n0\r\n\r\n", "not followed by a line end"),
        (b"3\r\nabc\r\n0\r\n\r\nsmuggled", "after the end of the chunked body"),
    ],
)
def test_malformed_chunked_body_refused(chunked: bytes, match: str) -> None:
    refused(with_body(CHUNKED, chunked), match)


@pytest.mark.parametrize(
    "rest",
    [
        b"0\r\nnot a field\r\n",
        b"0\r\nrest of the body that was not framed",
        b'0\r\n{"json": true}\r\n',
    ],
)
def test_bytes_after_the_last_chunk_that_are_no_trailer_refused(rest: bytes) -> None:
    # After the last chunk only trailer fields and a blank line may follow (RFC 9112 section
    # 7.1.2); anything else is body bytes the chunk sizes did not account for, and dropping
    # them silently would hand the application a truncated body.
    refused(with_body(CHUNKED, b"3\r\nabc\r\n" + rest), "chunked body|trailer")


@pytest.mark.parametrize(
    "header",
    [
        b"Transfer-Encoding: gzip",
        b"transfer-encoding: identity",
        b"Transfer-Encoding: gzip, chunked",
        b"Transfer-Encoding: chunked, chunked",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
        b"Transfer-Encoding: ",
    ],
)
def test_transfer_codings_other_than_chunked_refused(header: bytes) -> None:
    error = refused(with_body(header + b"\r\n", b"3\r\nabc\r\n0\r\n\r\n"), "Transfer-Encoding")
    assert "only chunked" in str(error)  # it says what is supported


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 12\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\ncontent-length: 12\r\n",
        b"Transfer-Encoding: gzip\r\nContent-Length: 12\r\n",
    ],
)
def test_transfer_encoding_with_content_length_refused(headers: bytes) -> None:
    # Both framings at once is how requests are smuggled (RFC 9112 section 6.3).
    refused(
        with_body(headers, b"3\r\nabc\r\n0\r\n\r\n"), "both Transfer-Encoding and Content-Length"
    )


# --------------------------------------------------------------------------------------------
# serialise_response


def test_serialise_response_exact_bytes() -> None:
    response = SubResponse(200, "OK", (("Content-Type", "text/plain"),), b"hi\r\n")
    assert serialise_response(response) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nhi\r\n"
    )


@pytest.mark.parametrize(
    ("status", "reason", "line"),
    [
        (404, "", b"HTTP/1.1 404 Not Found"),
        (204, "", b"HTTP/1.1 204 No Content"),
        (599, "", b"HTTP/1.1 599 Unknown"),
        (200, "Fine Thanks", b"HTTP/1.1 200 Fine Thanks"),
        (418, "I'm a teapot", b"HTTP/1.1 418 I'm a teapot"),
        (200, "caf\xe9", b"HTTP/1.1 200 caf\xe9"),
    ],
)
def test_status_line_always_has_a_reason(status: int, reason: str, line: bytes) -> None:
    data = serialise_response(SubResponse(status, reason, (), b""))
    assert data.split(b"\r\n")[0] == line


def content_lengths(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
        if line.lower().startswith(b"content-length:")
    ]


@pytest.mark.parametrize("body", [b"", b"x", bytes(range(256)) * 3])
def test_content_length_always_present_and_exact(body: bytes) -> None:
    data = serialise_response(SubResponse(200, "OK", (), body))
    assert content_lengths(data) == [str(len(body)).encode()]
    assert data.endswith(b"\r\n\r\n" + body)


def test_hop_by_hop_headers_dropped() -> None:
    headers = (
        ("Connection", "close"),
        ("Keep-Alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Kept", "yes"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    )
    data = serialise_response(SubResponse(200, "OK", headers, b"body"))
    assert data == (
        b"HTTP/1.1 200 OK\r\nX-Kept: yes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 4\r\n\r\nbody"
    )
    assert {"connection", "keep-alive", "transfer-encoding", "te", "upgrade"} <= HOP_BY_HOP


@pytest.mark.parametrize("value", ["999", "1", "abc", ""])
def test_app_content_length_replaced_by_real_length(value: str) -> None:
    response = SubResponse(200, "OK", (("Content-Length", value), ("X-A", "1")), b"12345")
    data = serialise_response(response)
    assert content_lengths(data) == [b"5"]
    assert data.endswith(b"\r\n\r\n12345")


def test_head_keeps_app_content_length_with_empty_body() -> None:
    response = SubResponse(200, "OK", (("content-length", "1234"),), b"ignored")
    data = serialise_response(response, head=True)
    assert data == b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"


def test_head_without_app_content_length() -> None:
    assert serialise_response(SubResponse(200, "OK", (), b""), head=True) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    data = serialise_response(SubResponse(200, "OK", (("Content-Length", "x"),), b"ab"), head=True)
    assert data == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"


def test_304_keeps_app_content_length_with_empty_body() -> None:
    response = SubResponse(304, "", (("ETag", '"v1"'), ("Content-Length", "42")), b"")
    assert serialise_response(response) == (
        b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 42\r\n\r\n'
    )


def test_a_header_block_answered_again_is_framed_for_each_answer() -> None:
    # A writer encodes each distinct header block once (in its own bounded table); every
    # answer still gets its own exact length, and what it sends under HEAD, 304 or in a list
    # of fields, as the first.
    seen: http1.EncodedBlocks = {}

    def framed(response: SubResponse, *, head: bool = False) -> bytes:
        status_line, lines, body = http1.response_head(response, head=head, seen=seen)
        assert b"".join((status_line, lines, b"\r\n", body)) == serialise_response(
            response, head=head
        )
        return b"".join((status_line, lines, b"\r\n", body))

    block = (("Content-Type", "text/plain"), ("Content-Length", "3"), ("Connection", "close"))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    for body in (b"abc", b"abcde", b""):
        assert (
            framed(SubResponse(200, "OK", block, body)) == head + b"%d\r\n\r\n" % len(body) + body
        )
        assert framed(SubResponse(200, "OK", block, body), head=True) == head + b"3\r\n\r\n"
    assert list(seen) == [block]
    listed: Any = [block[0], ("X-N", "1")]  # a list: not a key
    assert framed(SubResponse(304, "", listed, b"")) == (
        b"HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\nX-N: 1\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    bad = (("Content-Type", "text/plain"), ("X-A", "a\r\nX-Injected: 1"))
    for _ in range(2):  # refused every time, never kept
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            framed(SubResponse(200, "OK", bad, b""))
    assert bad not in seen
    for index in range(100):
        data = framed(SubResponse(200, "OK", (("X-N", str(index)),), b""))
        assert data == b"HTTP/1.1 200 OK\r\nX-N: %d\r\nContent-Length: 0\r\n\r\n" % index
    assert len(seen) == http1._SEEN_BLOCKS


def test_each_answer_writer_keeps_its_own_header_blocks() -> None:
    # Per batch, as the parser's table: an answer's header values (a session cookie) do not
    # outlive its batch in the process, and no batch's timing tells what another answered.
    cookie = (("Set-Cookie", "session=secret"),)
    first, second = ResponseWriter(), ResponseWriter()
    request = SubRequest("GET", "/a", (), b"")
    first.part(SubResponse(200, "OK", cookie, b""), request)
    assert list(first._encoded_blocks) == [cookie]
    assert second._encoded_blocks == {}
    assert b"Set-Cookie: session=secret" in second.part(
        SubResponse(200, "OK", cookie, b""), request
    )


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b"])
def test_serialise_response_refuses_cr_lf_nul_in_headers(value: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        serialise_response(SubResponse(200, "OK", (("X-A", value),), b""))


@pytest.mark.parametrize("reason", ["OK\r\nX-Injected: 1", "OK\n", "O\rK", "O\x00K"])
def test_serialise_response_refuses_cr_lf_nul_in_reason(reason: str) -> None:
    with pytest.raises(ValueError, match="reason phrase"):
        serialise_response(SubResponse(200, reason, (), b""))


@pytest.mark.parametrize("name", ["X A", "X:A", "", "X\nA"])
def test_serialise_response_refuses_invalid_header_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid header name"):
        serialise_response(SubResponse(200, "OK", ((name, "v"),), b""))


@pytest.mark.parametrize("status", [0, 99, 1000, -200])
def test_serialise_response_refuses_invalid_status(status: int) -> None:
    with pytest.raises(ValueError, match="status"):
        serialise_response(SubResponse(status, "X", (), b""))


# --------------------------------------------------------------------------------------------
# parse_response and serialise_request


def test_parse_response_exact() -> None:
    data = b"HTTP/1.1 201 Created\r\nLocation: /a/1\r\nContent-Length: 2\r\n\r\n{}"
    assert parse_response(data) == SubResponse(
        201, "Created", (("Location", "/a/1"), ("Content-Length", "2")), b"{}"
    )


def test_parse_response_lenient_forms() -> None:
    # Bare LF, no reason, no Content-Length: the body runs to the end.
    assert parse_response(b"HTTP/1.1 204\n\n") == SubResponse(204, "", (), b"")
    assert parse_response(b"HTTP/1.0 200 OK\nA:1\n\nrest\n") == SubResponse(
        200, "OK", (("A", "1"),), b"rest\n"
    )
    # A Content-Length shorter than what follows bounds the body (trailing CRLF of a part).
    assert parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab\r\n").body == b"ab"


@pytest.mark.parametrize("data", [b"", b"HTTP/1.1 20 OK\r\n\r\n", b"HTTP/1.1 OK\r\n", b"200 OK"])
def test_parse_response_refuses_malformed(data: bytes) -> None:
    with pytest.raises(MalformedBatch) as info:
        parse_response(data, part=4)
    assert info.value.part == 4


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
        b"Content-Length: 2, 3\r\n",
        b"Content-Length: 2\r\ncontent-length: 2, 30\r\n",
        b"Content-Length: 2,\r\n",  # an empty value in the list differs too
    ],
)
def test_parse_response_refuses_content_lengths_that_differ(lengths: bytes) -> None:
    # Its framing is unknown (RFC 9112 section 6.3): neither value is picked. urllib3 refuses
    # such a response in `Batching`'s fill, httpx used the first value.
    with pytest.raises(MalformedBatch, match="conflicting Content-Length values") as info:
        parse_response(b"HTTP/1.1 200 OK\r\n" + lengths + b"\r\nabc", part=2)
    assert info.value.part == 2
    huge = b"Content-Length: 2, " + b"9" * 10_000 + b"\r\n"
    with pytest.raises(MalformedBatch) as info:
        parse_response(b"HTTP/1.1 200 OK\r\n" + huge + b"\r\nabc")
    assert len(str(info.value)) < 100  # the values are named, not echoed whole


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: 2\r\nContent-Length: 2\r\n",
        b"Content-Length: 2, 2\r\n",
        b"Content-Length:  2 ,2 \r\n",
    ],
)
def test_parse_response_takes_content_lengths_that_agree(lengths: bytes) -> None:
    assert parse_response(b"HTTP/1.1 200 OK\r\n" + lengths + b"\r\nabc").body == b"ab"


def test_serialise_request_exact_bytes() -> None:
    headers = (("Accept", "application/json"), ("Content-Length", "999"))
    assert serialise_request("POST", "/a?b=c", headers, b"{}") == (
        b"POST /a?b=c HTTP/1.1\r\nAccept: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert serialise_request("GET", "Employees%2823%29", (), b"") == (
        b"GET Employees%2823%29 HTTP/1.1\r\n\r\n"
    )


def test_serialise_request_refuses_injection() -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        serialise_request("GET", "/", (("X-A", "1\r\nX-B: 2"),), b"")


def test_serialise_request_encodes_each_header_block_once_per_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch's requests repeat their header blocks: with ``seen``, each distinct block is
    encoded once, and the bytes are those written without it."""
    encoded: list[Headers] = []

    def counted(fields: Headers) -> bytes:
        encoded.append(fields)
        return encode_fields(fields)

    blocks = [(("Accept", "*/*"), ("Content-Length", "9")), (("Accept", "*/*"), ("X-N", "1"))]
    calls = [("PATCH", f"/items/{n}", blocks[n % 2], b"[%d]" % n) for n in range(20)]
    expected = [serialise_request(*call) for call in calls]
    monkeypatch.setattr(http1, "encode_fields", counted)  # what serialise_request calls
    seen: dict[Headers, bytes] = {}
    assert [serialise_request(*call, seen=seen) for call in calls] == expected
    assert encoded == [(("Accept", "*/*"),), blocks[1]]
    # A block that cannot be sent is refused each time, and never kept.
    bad = (("X-A", "1\r\nX-B: 2"),)
    for _ in range(2):
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            serialise_request("GET", "/", bad, b"", seen=seen)
    assert bad not in seen


SERIALISABLE_HEADERS = st.lists(
    st.tuples(
        st.text(alphabet="!#$%&'*+-.^_`|~0123456789ABCXYZabcxyz", min_size=1, max_size=10),
        st.text(
            alphabet=st.characters(
                min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"
            ),
            max_size=20,
        ).map(lambda value: value.strip(" \t")),
    ),
    max_size=5,
)


@PROPERTY
@given(
    status=st.integers(100, 999),
    reason=st.sampled_from(["", "OK", "Not Found", "Custom Reason \xe9"]),
    headers=SERIALISABLE_HEADERS,
    body=st.binary(max_size=300),
    head=st.booleans(),
)
def test_parse_response_round_trip(
    status: int, reason: str, headers: list[tuple[str, str]], body: bytes, head: bool
) -> None:
    response = SubResponse(status, reason, tuple(headers), body)
    data = serialise_response(response, head=head)
    parsed = parse_response(data)
    assert parsed.status == status
    assert parsed.reason == (reason or reason_phrase(status))
    kept = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP | {"content-length"}]
    assert list(parsed.headers[:-1]) == kept
    assert parsed.headers[-1][0] == "Content-Length"
    if head or status == 304:
        assert parsed.body == b""
    else:
        assert parsed.body == body
        assert parsed.headers[-1] == ("Content-Length", str(len(body)))


@PROPERTY
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "M-SEARCH"]),
    target=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
    headers=SERIALISABLE_HEADERS,
    body=st.binary(max_size=300),
)
def test_request_round_trip(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    data = serialise_request(method, target, tuple(headers), body)
    kept = tuple((n, v) for n, v in headers if n.lower() != "content-length")
    if body:
        kept += (("Content-Length", str(len(body))),)
    assert parse_request(data, LIMITS) == (method, target, kept, body)
    seen: dict[Headers, bytes] = {}  # the same bytes with header blocks kept, and reused
    assert serialise_request(method, target, tuple(headers), body, seen=seen) == data
    assert serialise_request(method, target, tuple(headers), body, seen=seen) == data


FRAGMENTS = st.sampled_from(
    [
        b"GET / HTTP/1.1",
        b"HTTP/1.1 200 OK",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b":",
        b"Content-Length: ",
        b"Transfer-Encoding: chunked",
        b"3",
        b"\x00",
        b"\xb2",
        b"\xff",
    ]
)


@PROPERTY
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.lists(st.one_of(FRAGMENTS, st.binary(max_size=5)), max_size=30).map(b"".join),
    )
)
def test_any_bytes_parse_or_raise_batch_error(data: bytes) -> None:
    # Only BatchError is suppressed: any other exception fails the test.
    for limits in (LIMITS, Limits(max_header_size=20)):
        with contextlib.suppress(BatchError):
            method, target, _headers, body = parse_request(data, limits, 1)
            assert method
            assert target
            assert body in data
    with contextlib.suppress(BatchError):
        assert parse_response(data, 1).body in data


def test_a_chunked_body_in_more_chunks_than_the_bound_is_refused() -> None:
    chunks = b"1\r\nx\r\n" * MAX_CHUNKS
    assert parse(with_body(CHUNKED, chunks + b"0\r\n\r\n"))[3] == b"x" * MAX_CHUNKS
    with pytest.raises(MalformedBatch, match=f"more than {MAX_CHUNKS} chunks"):
        parse(with_body(CHUNKED, chunks + b"1\r\nx\r\n0\r\n\r\n"))
