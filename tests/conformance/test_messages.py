"""The HTTP request inside a part: its request line, header fields, ``Content-Length``,
``Transfer-Encoding: chunked``, and the sizes and counts of its header blocks.

A malformed request refuses the whole batch with a ``400`` (``413`` past a limit) problem
naming the part; nothing runs, and the endpoint answers the next batch normally; on every
front end alike.
"""

from __future__ import annotations

import json

import pytest

from flask_batch.wire.model import KIB

from .conftest import Server
from .wire import CLOSE, DELIMITER, MIME, OK, body, part, post

# The request line


@pytest.mark.parametrize(
    "line",
    [
        b"GET",
        b"GET  /ok HTTP/1.1",
        b"GET /ok HTTP/1.1 extra",
        b"/ok GET HTTP/1.1",
        b"G(T /ok HTTP/1.1",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"GET /ok\x00 HTTP/1.1",
        b"GET /o k HTTP/1.1",
    ],
)
def test_garbage_request_lines_are_refused_naming_the_part(server: Server, line: bytes) -> None:
    document = server.refused(body(OK, line + b"\r\n\r\n"))
    assert document["part"] == 2
    assert "request line" in document["detail"]


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b"HTTP/9.9"])
def test_unsupported_http_versions_are_refused(server: Server, version: bytes) -> None:
    document = server.refused(body(OK, b"GET /ok " + version + b"\r\n\r\n"))
    assert document["part"] == 2
    assert version.decode() in document["detail"]


@pytest.mark.parametrize(
    "line",
    [
        b"GET /caf\xc3\xa9 HTTP/1.1",  # UTF-8 in the target: it must be percent-encoded
        b"GET /caf\xe9 HTTP/1.1",  # Latin-1, not even UTF-8
        b"G\xc9T /ok HTTP/1.1",
        b"GET /ok HTTP/1.1\xff",
    ],
)
def test_non_ascii_bytes_in_a_request_line_are_refused(server: Server, line: bytes) -> None:
    document = server.refused(body(OK, line + b"\r\n\r\n"))
    assert document["part"] == 2
    assert "request line" in document["detail"]


# Header fields


def test_non_utf8_bytes_in_header_values_reach_the_app_exactly(server: Server) -> None:
    # obs-text (RFC 9110 section 5.5): passed on as Latin-1 text, as PEP 3333 servers do.
    message = b"GET /inspect HTTP/1.1\r\nX-Latin: caf\xe9\r\nX-Bytes: \xff\xfe\x80\r\n\r\n"
    (answer,) = post(server.base, "/batch", body(message)).parts()
    seen = json.loads(answer.body)["headers"]
    assert seen["x-latin"].encode("latin-1") == b"caf\xe9"
    assert seen["x-bytes"].encode("latin-1") == b"\xff\xfe\x80"


def test_non_ascii_bytes_in_a_content_id_are_echoed_byte_for_byte(server: Server) -> None:
    mime = MIME + b"Content-ID: <caf\xe9-\xff>\r\n"
    answer = post(server.base, "/batch", part(OK, mime=mime) + CLOSE)
    assert [r.status for r in answer.parts()] == [200]
    assert b"Content-ID: <response-caf\xe9-\xff>\r\n" in answer.body


@pytest.mark.parametrize(
    "field",
    [
        b"Bad Name: 1",  # space in the name
        b"X-A : 1",  # space before the colon (RFC 9112 section 5.1: must be refused)
        b"X(A): 1",
        b": no-name",
        b"no-colon",
        b"Caf\xe9: 1",  # non-ASCII in the name
        b"X-A: a\rb",  # a bare CR inside the value
        b"X-A: a\x00b",  # NUL
        b"X-A: a\nnot a header",  # an LF inside the value starts a line that is no field
    ],
)
def test_invalid_header_fields_are_refused_naming_the_part(server: Server, field: bytes) -> None:
    document = server.refused(body(OK, b"GET /ok HTTP/1.1\r\n" + field + b"\r\n\r\n"))
    assert document["part"] == 2
    assert "header" in document["detail"]


def test_obsolete_line_folding_is_refused(server: Server) -> None:
    message = b"GET /ok HTTP/1.1\r\nX-A: first\r\n second\r\n\r\n"
    document = server.refused(body(OK, message))
    assert document["part"] == 2
    assert "folding" in document["detail"]


def test_a_malformed_batch_runs_nothing_and_names_the_first_bad_part(server: Server) -> None:
    first = b"GET /ok HTTP/1.1\r\nBad Header\r\n\r\n"
    document = server.refused(body(first, b"GET /ok HTTP/9.9\r\n\r\n"))
    assert document["part"] == 1
    assert "Bad Header" in document["detail"]


# Content-Length


def test_identical_duplicate_content_lengths_count_once(server: Server) -> None:
    # RFC 9110 section 8.6 lets a recipient accept repeated identical values as one.
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    (echo,) = post(server.base, "/batch", body(message)).parts()
    assert echo.body == b"hello"


@pytest.mark.parametrize(
    ("lengths", "words"),
    [
        ((b"5", b"6"), "conflicting"),
        ((b"5, 6",), "Content-Length"),
        ((b"-5",), "Content-Length"),
        ((b"+5",), "Content-Length"),
        ((b"0x5",), "Content-Length"),
        ((b"5 5",), "Content-Length"),
        ((b"\xd9\xa5",), "Content-Length"),  # ARABIC-INDIC DIGIT FIVE in UTF-8
    ],
)
def test_invalid_or_conflicting_content_lengths_are_refused(
    server: Server, lengths: tuple[bytes, ...], words: str
) -> None:
    fields = b"".join(b"Content-Length: " + value + b"\r\n" for value in lengths)
    document = server.refused(body(OK, b"POST /echo HTTP/1.1\r\n" + fields + b"\r\nhello"))
    assert document["part"] == 2
    assert words in document["detail"]


def test_a_content_length_larger_than_the_body_is_refused(server: Server) -> None:
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 50\r\n\r\nhello"
    document = server.refused(body(message, OK))
    assert document["part"] == 1
    assert "50" in document["detail"]


def test_a_content_length_smaller_than_the_body_is_refused(server: Server) -> None:
    # The bytes after the declared length would otherwise be a second, smuggled request.
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /ok HTTP/1.1\r\n\r\n"
    document = server.refused(body(OK, message))
    assert document["part"] == 2
    assert "Content-Length 5" in document["detail"]


def test_a_content_length_matching_the_body_exactly_is_accepted(server: Server) -> None:
    data = bytes(range(256))
    message = b"PUT /echo HTTP/1.1\r\nContent-Length: 256\r\n\r\n" + data
    (echo,) = post(server.base, "/batch", body(message)).parts()
    assert echo.body == data


# Transfer-Encoding: chunked inside a part


def test_a_chunked_part_is_decoded(server: Server) -> None:
    message = (
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n"
        b"1;name=value\r\n \r\n"  # a chunk extension, ignored
        b"A\r\n0123456789\r\n"  # upper-case hex
        b"0\r\n\r\n"
    )
    first, echo, last = post(server.base, "/batch", body(OK, message, OK)).parts()
    assert echo.status == 200
    assert echo.body == b"hello 0123456789"
    assert (first.status, last.status) == (200, 200)


def test_a_chunked_part_with_binary_chunks_is_decoded_exactly(server: Server) -> None:
    data = bytes(range(256)) * 3 + b"\r\n" + DELIMITER + b"\r\n"
    chunks = b"".join(
        f"{len(data[i : i + 100]):x}\r\n".encode() + data[i : i + 100] + b"\r\n"
        for i in range(0, len(data), 100)
    )
    message = b"PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    # The data holds the batch's own delimiter line: the client must use another boundary.
    other = "other-boundary"
    data_body = (
        f"--{other}\r\n".encode() + MIME + b"\r\n" + message + b"\r\n" + f"--{other}--".encode()
    )
    answer = post(server.base, "/batch", data_body, f"multipart/mixed; boundary={other}")
    (echo,) = answer.parts()
    assert echo.body == data


def test_chunked_trailers_are_ignored(server: Server) -> None:
    message = (
        b"GET /inspect HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Trailer: sneaky\r\nAuthorization: Bearer forged\r\n\r\n"
    )
    (answer,) = post(server.base, "/batch", body(message)).parts()
    seen = json.loads(answer.body)["headers"]
    assert "x-trailer" not in seen
    assert "authorization" not in seen


def test_a_chunked_part_with_an_empty_body(server: Server) -> None:
    message = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    (echo,) = post(server.base, "/batch", body(message)).parts()
    assert (echo.status, echo.body) == (200, b"")


@pytest.mark.parametrize(
    "chunks",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",  # not a hex size
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n",  # no last chunk
        b"5\r\nhel",  # the chunk is cut short
        b"5\r\nhello world\r\n0\r\n\r\n",  # more data than the size says
        b"3\r\nhello\r\n0\r\n\r\n",
        b"\r\n\r\n",  # no size line at all
        b"ffffffffffffffffffff\r\nx\r\n0\r\n\r\n",  # a size no part can hold
    ],
)
def test_malformed_chunking_is_refused_naming_the_part(server: Server, chunks: bytes) -> None:
    message = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    document = server.refused(body(OK, message))
    assert document["part"] == 2
    assert "chunk" in document["detail"]


def test_transfer_encoding_with_content_length_is_refused(server: Server) -> None:
    # Both framings in one message is how requests are smuggled (RFC 9112 section 6.3).
    message = (
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    document = server.refused(body(OK, message))
    assert document["part"] == 2
    assert "Transfer-Encoding" in document["detail"]


@pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"chunked, chunked", b"identity"])
def test_other_transfer_codings_in_a_part_are_refused(server: Server, coding: bytes) -> None:
    message = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n"
    document = server.refused(body(OK, message))
    assert document["part"] == 2
    assert "Transfer-Encoding" in document["detail"]


# Header sizes and counts


def test_a_huge_header_line_is_refused_as_max_header_size(server: Server) -> None:
    message = b"GET /ok HTTP/1.1\r\nX-Huge: " + b"a" * (64 * KIB) + b"\r\n\r\n"
    document = server.refused(body(OK, message), 413)
    assert (document["limit"], document["value"], document["part"]) == (
        "max_header_size",
        16 * KIB,
        2,
    )


def test_a_huge_part_header_line_is_refused_as_max_header_size(server: Server) -> None:
    mime = MIME + b"Content-ID: <" + b"i" * (64 * KIB) + b">\r\n"
    document = server.refused(part(OK) + part(OK, mime=mime) + CLOSE, 413)
    assert (document["limit"], document["part"]) == ("max_header_size", 2)


def test_a_huge_request_line_is_refused_as_max_header_size(server: Server) -> None:
    message = b"GET /ok?" + b"q" * (64 * KIB) + b" HTTP/1.1\r\n\r\n"
    document = server.refused(body(message), 413)
    assert (document["limit"], document["part"]) == ("max_header_size", 1)


def test_thousands_of_tiny_headers_are_refused_as_max_headers(server: Server) -> None:
    fields = b"a:\r\n" * 3000  # 12 KB: within max_header_size, far over max_headers
    document = server.refused(body(OK, b"GET /ok HTTP/1.1\r\n" + fields + b"\r\n"), 413)
    assert (document["limit"], document["value"], document["part"]) == ("max_headers", 100, 2)


def test_thousands_of_tiny_part_headers_are_refused_as_max_headers(server: Server) -> None:
    mime = MIME + b"a:\r\n" * 3000
    document = server.refused(part(OK, mime=mime) + part(OK) + CLOSE, 413)
    assert (document["limit"], document["value"], document["part"]) == ("max_headers", 100, 1)


def _fields(count: int) -> bytes:
    return b"".join(f"X-H{i}: {i}\r\n".encode() for i in range(count))


def test_max_headers_at_the_edge_for_http_headers(server: Server) -> None:
    at_limit = b"GET /ok HTTP/1.1\r\n" + _fields(100) + b"\r\n"
    assert [r.status for r in post(server.base, "/batch", body(at_limit)).parts()] == [200]
    server.ran.clear()
    over = b"GET /ok HTTP/1.1\r\n" + _fields(101) + b"\r\n"
    document = server.refused(body(OK, over), 413)
    assert (document["limit"], document["value"], document["part"]) == ("max_headers", 100, 2)


def test_max_headers_at_the_edge_for_part_headers(server: Server) -> None:
    # Content-Type is one of the fields.
    at_limit = part(OK, mime=MIME + _fields(99)) + CLOSE
    assert [r.status for r in post(server.base, "/batch", at_limit).parts()] == [200]
    server.ran.clear()
    document = server.refused(part(OK, mime=MIME + _fields(100)) + CLOSE, 413)
    assert (document["limit"], document["value"], document["part"]) == ("max_headers", 100, 1)


def test_a_route_sets_its_own_max_headers(server: Server) -> None:
    eight = b"GET /ok HTTP/1.1\r\n" + _fields(8) + b"\r\n"
    assert [r.status for r in post(server.base, "/batch/small", body(eight)).parts()] == [200]
    server.ran.clear()
    nine = b"GET /ok HTTP/1.1\r\n" + _fields(9) + b"\r\n"
    document = server.refused(body(nine), 413, route="/batch/small")
    assert (document["limit"], document["value"]) == ("max_headers", 8)
