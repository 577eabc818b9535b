"""Malformed and hostile batch bodies: always a clear 4xx problem, never a 500, a hang or a loss.

Every refusal here is checked the way a client sees it: the status, an
``application/problem+json`` document whose detail says what is wrong, the 1-based ``part``
it is about, that no part ran, and that the same app answers the next batch normally.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from functools import cache
from typing import Any

import pytest
from flask import Flask, Response, request
from werkzeug.test import TestResponse

from flask_batch import add_batch_route
from flask_batch.wire.batch import read_responses
from flask_batch.wire.model import KIB, MIB, SubResponse

from .batching import BOUNDARY, batch, post, problem, sub

DELIMITER = f"--{BOUNDARY}".encode()
CLOSE = f"--{BOUNDARY}--\r\n".encode()
MIME = b"Content-Type: application/http\r\n"
OK = b"GET /ok HTTP/1.1\r\n\r\n"


def part(message: bytes, mime: bytes = MIME) -> bytes:
    """One part of a hand-written batch: its MIME headers, a blank line and the message."""
    return DELIMITER + b"\r\n" + mime + b"\r\n" + message + b"\r\n"


def body(*messages: bytes) -> bytes:
    """A complete batch body of ``application/http`` parts holding ``messages``."""
    return b"".join(part(message) for message in messages) + CLOSE


def make_app(**options: Any) -> Flask:
    app = Flask(__name__)
    ran: list[str] = []
    app.config["ran"] = ran

    @app.before_request
    def record() -> None:
        if request.endpoint != "batch":
            ran.append(f"{request.method} {request.full_path.rstrip('?')}")

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    @app.route("/echo", methods=["POST", "PUT"])
    def echo() -> Response:
        return Response(request.get_data(), mimetype="application/octet-stream")

    @app.get("/headers")
    def headers() -> dict[str, object]:
        # Latin-1 round trip: the exact bytes the client sent in each header value (PEP 3333).
        return {name: list(value.encode("latin-1")) for name, value in request.headers.items()}

    add_batch_route(app, **options)
    return app


@pytest.fixture
def app() -> Flask:
    return make_app()


def answers(answer: TestResponse) -> list[SubResponse]:
    """The sub-responses of a batch answer, checked to be a 200 multipart."""
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [r for _, r in read_responses(answer.headers["Content-Type"], answer.get_data())]


def refused(app: Flask, data: bytes, status: int = 400, **kwargs: Any) -> dict[str, Any]:
    """Post ``data``; check the batch was refused with ``status``, nothing ran, and the app
    answers the next batch. Returns the problem document."""
    answer = post(app.test_client(), data, **kwargs)
    assert answer.status_code == status, answer.get_data(as_text=True)
    document = problem(answer)
    assert app.config["ran"] == [], "a part ran although the batch was refused"
    assert [r.status for r in batch(app.test_client(), sub("GET", "/ok"))] == [200]
    app.config["ran"].clear()
    return document


# The multipart framing


def test_a_truncated_body_is_refused_naming_the_part(app: Flask) -> None:
    whole = body(OK, b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    document = refused(app, whole[: whole.index(b"hello") + 2])
    assert document["part"] == 2
    assert "close delimiter" in str(document["detail"])


def test_a_missing_close_delimiter_is_refused(app: Flask) -> None:
    document = refused(app, part(OK) + part(OK))
    assert document["part"] == 2
    assert "close delimiter" in str(document["detail"])


def test_a_boundary_absent_from_the_body_is_refused(app: Flask) -> None:
    document = refused(app, body(OK), headers={"Content-Type": "multipart/mixed; boundary=other"})
    assert "--other" in str(document["detail"])
    assert "never occurs" in str(document["detail"])


def test_an_empty_body_is_refused(app: Flask) -> None:
    document = refused(app, b"", environ_overrides={"CONTENT_LENGTH": "0"})
    assert "empty" in str(document["detail"])


@pytest.mark.parametrize(
    "boundary",
    [
        "a" * 71,  # RFC 2046: 1 to 70 characters
        "b@d",
        "semi;colon",
        "ends-with-space ",
        "tab\there",
        "caf\u00e9",
        "",
    ],
)
def test_an_invalid_boundary_is_refused(app: Flask, boundary: str) -> None:
    content_type = f'multipart/mixed; boundary="{boundary}"'
    data = body(OK).replace(BOUNDARY.encode(), boundary.encode("utf-8"))
    document = refused(app, data, headers={"Content-Type": content_type})
    assert "boundary" in str(document["detail"])


def test_a_boundary_of_exactly_70_characters_is_accepted(app: Flask) -> None:
    boundary = "b" * 70
    data = body(OK).replace(BOUNDARY.encode(), boundary.encode())
    answer = post(
        app.test_client(), data, headers={"Content-Type": f"multipart/mixed; boundary={boundary}"}
    )
    assert answer.status_code == 200


def test_multipart_mixed_without_a_boundary_is_refused(app: Flask) -> None:
    document = refused(app, body(OK), headers={"Content-Type": "multipart/mixed"})
    assert "boundary" in str(document["detail"])


def test_a_part_without_the_blank_line_after_its_headers_is_refused(app: Flask) -> None:
    data = part(OK) + DELIMITER + b"\r\n" + MIME + DELIMITER + b"\r\n" + MIME + b"\r\n" + OK
    document = refused(app, data + b"\r\n" + CLOSE)
    assert document["part"] == 2
    assert "blank line" in str(document["detail"])


@pytest.mark.parametrize(
    "mime",
    [
        b"Content-Type application/http\r\n",  # no colon
        b"Bad Name: 1\r\n" + MIME,
        b"Caf\xe9: 1\r\n" + MIME,
        b"X-Nul: a\x00b\r\n" + MIME,
        b" folded: first\r\n" + MIME,
    ],
)
def test_invalid_part_headers_are_refused_naming_the_part(app: Flask, mime: bytes) -> None:
    data = part(OK) + part(OK, mime=mime) + CLOSE
    document = refused(app, data)
    assert document["part"] == 2


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        (b"text/plain", "application/http"),
        (b"multipart/mixed; boundary=inner", "nested"),
    ],
)
def test_a_part_that_is_not_application_http_is_refused(
    app: Flask, content_type: bytes, words: str
) -> None:
    data = part(OK) + part(OK, mime=b"Content-Type: " + content_type + b"\r\n") + CLOSE
    document = refused(app, data)
    assert document["part"] == 2
    assert words in str(document["detail"])


@pytest.mark.parametrize(
    "empty",
    [
        part(b""),
        part(b"\r\n\r\n\r\n"),
        part(b"", mime=b""),  # not even MIME headers
        DELIMITER + b"\r\n",  # a delimiter right after a delimiter
    ],
)
def test_an_empty_part_is_refused_not_dropped(app: Flask, empty: bytes) -> None:
    document = refused(app, part(OK) + empty + part(OK) + CLOSE)
    assert document["part"] == 2


def test_an_enormous_number_of_empty_parts_stops_at_the_first(app: Flask) -> None:
    # Errors come in the order of the body, whatever its chunking: the first empty part is
    # refused before the count of parts is reached, and reading stops there.
    data = (DELIMITER + b"\r\n\r\n") * 200_000 + CLOSE  # 3.4 MB of empty parts
    document = refused(app, data)
    assert document["part"] == 1
    assert "no HTTP request" in document["detail"]


def test_an_enormous_number_of_tiny_parts_stops_at_max_parts(app: Flask) -> None:
    part = DELIMITER + b"\r\n\r\nGET /ok HTTP/1.1\r\n\r\n"
    document = refused(app, part * 200_000 + CLOSE, status=413)  # 7.6 MB of tiny parts
    assert document["limit"] == "max_parts"
    assert document["value"] == 100
    assert document["part"] == 101


# The HTTP request inside a part


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
def test_garbage_request_lines_are_refused_naming_the_part(app: Flask, line: bytes) -> None:
    document = refused(app, body(OK, line + b"\r\n\r\n"))
    assert document["part"] == 2
    assert "request line" in str(document["detail"])


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b"HTTP/9.9"])
def test_unsupported_http_versions_are_refused(app: Flask, version: bytes) -> None:
    document = refused(app, body(OK, b"GET /ok " + version + b"\r\n\r\n"))
    assert document["part"] == 2
    assert version.decode() in str(document["detail"])


@pytest.mark.parametrize(
    "line",
    [
        b"GET /caf\xc3\xa9 HTTP/1.1",  # UTF-8 in the target: it must be percent-encoded
        b"GET /caf\xe9 HTTP/1.1",  # Latin-1, not even UTF-8
        b"G\xc9T /ok HTTP/1.1",
        b"GET /ok HTTP/1.1\xff",
    ],
)
def test_non_ascii_bytes_in_a_request_line_are_refused(app: Flask, line: bytes) -> None:
    document = refused(app, body(OK, line + b"\r\n\r\n"))
    assert document["part"] == 2
    assert "request line" in str(document["detail"])


def test_non_utf8_bytes_in_header_values_reach_the_app_exactly(app: Flask) -> None:
    # obs-text (RFC 9110 section 5.5): passed on as Latin-1 text, as PEP 3333 servers do.
    message = b"GET /headers HTTP/1.1\r\nX-Latin: caf\xe9\r\nX-Bytes: \xff\xfe\x80\r\n\r\n"
    answer = post(app.test_client(), body(message))
    assert answer.status_code == 200
    (response,) = answers(answer)
    seen = json.loads(response.body)
    assert bytes(seen["X-Latin"]) == b"caf\xe9"
    assert bytes(seen["X-Bytes"]) == b"\xff\xfe\x80"


def test_non_ascii_bytes_in_a_content_id_are_echoed_byte_for_byte(app: Flask) -> None:
    mime = MIME + b"Content-ID: <caf\xe9-\xff>\r\n"
    answer = post(app.test_client(), part(OK, mime=mime) + CLOSE)
    assert answer.status_code == 200
    assert b"Content-ID: <response-caf\xe9-\xff>\r\n" in answer.get_data()


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
def test_invalid_header_fields_are_refused_naming_the_part(app: Flask, field: bytes) -> None:
    document = refused(app, body(OK, b"GET /ok HTTP/1.1\r\n" + field + b"\r\n\r\n"))
    assert document["part"] == 2
    assert "header" in str(document["detail"])


def test_obsolete_line_folding_is_refused(app: Flask) -> None:
    message = b"GET /ok HTTP/1.1\r\nX-A: first\r\n second\r\n\r\n"
    document = refused(app, body(OK, message))
    assert document["part"] == 2
    assert "folding" in str(document["detail"])


def test_identical_duplicate_content_lengths_count_once(app: Flask) -> None:
    # RFC 9110 section 8.6 lets a recipient accept repeated identical values as one.
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    (echo,) = answers(post(app.test_client(), body(message)))
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
    app: Flask, lengths: tuple[bytes, ...], words: str
) -> None:
    fields = b"".join(b"Content-Length: " + value + b"\r\n" for value in lengths)
    document = refused(app, body(OK, b"POST /echo HTTP/1.1\r\n" + fields + b"\r\nhello"))
    assert document["part"] == 2
    assert words in str(document["detail"])


def test_a_content_length_larger_than_the_body_is_refused(app: Flask) -> None:
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 50\r\n\r\nhello"
    document = refused(app, body(message, OK))
    assert document["part"] == 1
    assert "50" in str(document["detail"])


def test_a_content_length_smaller_than_the_body_is_refused(app: Flask) -> None:
    # The bytes after the declared length would otherwise be a second, smuggled request.
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /ok HTTP/1.1\r\n\r\n"
    document = refused(app, body(OK, message))
    assert document["part"] == 2
    assert "Content-Length 5" in str(document["detail"])


def test_a_content_length_matching_the_body_exactly_is_accepted(app: Flask) -> None:
    data = bytes(range(256))
    message = b"PUT /echo HTTP/1.1\r\nContent-Length: 256\r\n\r\n" + data
    (echo,) = answers(post(app.test_client(), body(message)))
    assert echo.body == data


# Transfer-Encoding: chunked inside a part


def test_a_chunked_part_is_decoded(app: Flask) -> None:
    message = (
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n"
        b"1;name=value\r\n \r\n"  # a chunk extension, ignored
        b"A\r\n0123456789\r\n"  # upper-case hex
        b"0\r\n\r\n"
    )
    answer = post(app.test_client(), body(OK, message, OK))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    first, echo, last = answers(answer)
    assert echo.status == 200
    assert echo.body == b"hello 0123456789"
    assert (first.status, last.status) == (200, 200)


def test_a_chunked_part_with_binary_chunks_is_decoded_exactly(app: Flask) -> None:
    data = bytes(range(256)) * 3 + f"\r\n{DELIMITER.decode()}\r\n".encode()
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
    answer = post(
        app.test_client(), data_body, headers={"Content-Type": f"multipart/mixed; boundary={other}"}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    (echo,) = answers(answer)
    assert echo.body == data


def test_chunked_trailers_are_ignored(app: Flask) -> None:
    message = (
        b"GET /headers HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Trailer: sneaky\r\nAuthorization: Bearer forged\r\n\r\n"
    )
    answer = post(app.test_client(), body(message))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    (response,) = answers(answer)
    seen = json.loads(response.body)
    assert "X-Trailer" not in seen
    assert "Authorization" not in seen


def test_a_chunked_part_with_an_empty_body(app: Flask) -> None:
    message = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    (echo,) = answers(post(app.test_client(), body(message)))
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
def test_malformed_chunking_is_refused_naming_the_part(app: Flask, chunks: bytes) -> None:
    message = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    document = refused(app, body(OK, message))
    assert document["part"] == 2
    assert "chunk" in str(document["detail"])


def test_transfer_encoding_with_content_length_is_refused(app: Flask) -> None:
    # Both framings in one message is how requests are smuggled (RFC 9112 section 6.3).
    message = (
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    document = refused(app, body(OK, message))
    assert document["part"] == 2
    assert "Transfer-Encoding" in str(document["detail"])


@pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"chunked, chunked", b"identity"])
def test_other_transfer_codings_in_a_part_are_refused(app: Flask, coding: bytes) -> None:
    message = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n"
    document = refused(app, body(OK, message))
    assert document["part"] == 2
    assert "Transfer-Encoding" in str(document["detail"])


# Header sizes and counts


def test_a_huge_header_line_is_refused_as_max_header_size(app: Flask) -> None:
    message = b"GET /ok HTTP/1.1\r\nX-Huge: " + b"a" * (64 * KIB) + b"\r\n\r\n"
    document = refused(app, body(OK, message), status=413)
    assert (document["limit"], document["value"], document["part"]) == (
        "max_header_size",
        16 * KIB,
        2,
    )


def test_a_huge_part_header_line_is_refused_as_max_header_size(app: Flask) -> None:
    mime = MIME + b"Content-ID: <" + b"i" * (64 * KIB) + b">\r\n"
    document = refused(app, part(OK) + part(OK, mime=mime) + CLOSE, status=413)
    assert (document["limit"], document["part"]) == ("max_header_size", 2)


def test_a_huge_request_line_is_refused_as_max_header_size(app: Flask) -> None:
    message = b"GET /ok?" + b"q" * (64 * KIB) + b" HTTP/1.1\r\n\r\n"
    document = refused(app, body(message), status=413)
    assert (document["limit"], document["part"]) == ("max_header_size", 1)


def test_thousands_of_tiny_headers_are_refused_as_max_headers(app: Flask) -> None:
    fields = b"a:\r\n" * 3000  # 12 KB: within max_header_size, far over max_headers
    document = refused(app, body(OK, b"GET /ok HTTP/1.1\r\n" + fields + b"\r\n"), status=413)
    assert (document["limit"], document["value"], document["part"]) == ("max_headers", 100, 2)


def test_thousands_of_tiny_part_headers_are_refused_as_max_headers(app: Flask) -> None:
    mime = MIME + b"a:\r\n" * 3000
    document = refused(app, part(OK, mime=mime) + part(OK) + CLOSE, status=413)
    assert (document["limit"], document["value"], document["part"]) == ("max_headers", 100, 1)


def _http_fields(count: int) -> bytes:
    return b"".join(f"X-H{i}: {i}\r\n".encode() for i in range(count))


def test_max_headers_at_the_edge_for_http_headers() -> None:
    app = make_app()
    at_limit = b"GET /ok HTTP/1.1\r\n" + _http_fields(100) + b"\r\n"
    assert post(app.test_client(), body(at_limit)).status_code == 200
    over = b"GET /ok HTTP/1.1\r\n" + _http_fields(101) + b"\r\n"
    document = refused(make_app(), body(OK, over), 413)
    assert (document["limit"], document["value"], document["part"]) == ("max_headers", 100, 2)


def test_max_headers_at_the_edge_for_part_headers() -> None:
    app = make_app()
    # Content-Type is one of the fields.
    assert (
        post(app.test_client(), part(OK, mime=MIME + _http_fields(99)) + CLOSE).status_code == 200
    )
    document = refused(make_app(), part(OK, mime=MIME + _http_fields(100)) + CLOSE, 413)
    assert (document["limit"], document["value"], document["part"]) == ("max_headers", 100, 1)


@pytest.mark.parametrize("configure", ["option", "config"])
def test_max_headers_is_configurable(configure: str) -> None:
    app = Flask(__name__)
    app.route("/ok")(lambda: "ok")
    if configure == "option":
        add_batch_route(app, max_headers=5)
    else:
        app.config["BATCH_MAX_HEADERS"] = 5
        add_batch_route(app)
    client = app.test_client()
    five = b"GET /ok HTTP/1.1\r\n" + _http_fields(5) + b"\r\n"
    assert post(client, body(five)).status_code == 200
    six = b"GET /ok HTTP/1.1\r\n" + _http_fields(6) + b"\r\n"
    answer = post(client, body(six))
    assert answer.status_code == 413
    assert (problem(answer)["limit"], problem(answer)["value"]) == ("max_headers", 5)


def test_max_headers_must_be_a_positive_integer() -> None:
    with pytest.raises(ValueError, match="max_headers"):
        add_batch_route(Flask(__name__), max_headers=0)


# A compressed batch body


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_a_gzip_batch_is_decompressed(app: Flask) -> None:
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    answer = post(app.test_client(), _gzip(body(OK, message)), headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    ok, echo = answers(answer)
    assert (ok.body, echo.body) == (b"ok", b"hello")


def test_a_deflate_batch_is_decompressed(app: Flask) -> None:
    # HTTP's "deflate" is the zlib format (RFC 9110 section 8.4.1.2).
    data = zlib.compress(body(OK, OK))
    answer = post(app.test_client(), data, headers={"Content-Encoding": "deflate"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert [r.status for r in answers(answer)] == [200, 200]


def test_a_gzip_batch_at_the_decompressed_limit_is_accepted_and_one_byte_more_refused() -> None:
    limit = 64 * KIB
    core = body(OK, OK)
    exact = b"x" * (limit - len(core) - 2) + b"\r\n" + core  # padded with a preamble
    assert len(exact) == limit
    app = make_app(max_body_size=limit)
    headers = {"Content-Encoding": "gzip"}
    answer = post(app.test_client(), _gzip(exact), headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    document = refused(make_app(max_body_size=limit), _gzip(b"y" + exact), 413, headers=headers)
    assert (document["limit"], document["value"]) == ("max_body_size", limit)


@cache
def _bomb() -> bytes:
    """64 MiB of zeros in about 64 KB of gzip."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MIB)
    return b"".join([compressor.compress(block) for _ in range(64)] + [compressor.flush()])


def test_a_gzip_bomb_is_refused_without_expanding_it() -> None:
    app = make_app(max_body_size=MIB)
    client = app.test_client()
    bomb = _bomb()
    assert len(bomb) < MIB  # the compressed body itself is within the limit
    tracemalloc.start()
    try:
        answer = post(client, bomb, headers={"Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 413
    document = problem(answer)
    assert (document["limit"], document["value"]) == ("max_body_size", MIB)
    assert peak < 16 * MIB, f"{peak} bytes allocated: the bomb was expanded"
    assert app.config["ran"] == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_corrupt_compressed_body_is_a_400(app: Flask, encoding: str) -> None:
    document = refused(app, body(OK), headers={"Content-Encoding": encoding})
    assert encoding in str(document["detail"])


def test_a_truncated_gzip_body_is_a_400(app: Flask) -> None:
    data = _gzip(body(OK, OK))
    document = refused(app, data[: len(data) // 2], headers={"Content-Encoding": "gzip"})
    assert "gzip" in str(document["detail"])


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "x-custom"])
def test_other_content_encodings_are_refused_with_415(app: Flask, encoding: str) -> None:
    document = refused(app, body(OK), 415, headers={"Content-Encoding": encoding})
    assert encoding in str(document["detail"])


def test_identity_content_encoding_is_accepted(app: Flask) -> None:
    answer = post(app.test_client(), body(OK), headers={"Content-Encoding": "identity"})
    assert answer.status_code == 200


# Nothing breaks the endpoint for good


def test_a_stream_of_hostile_batches_never_gets_a_500(app: Flask) -> None:
    client = app.test_client()
    samples = [
        b"\x00" * 1000,
        DELIMITER * 500,
        (DELIMITER + b"\r\n") * 50,
        DELIMITER + b"--",
        CLOSE * 3,
        b"\r\n" * 5000,
        part(b"\xff" * 100) + CLOSE,
        part(OK, mime=b"\x80\x81: \x82\r\n") + CLOSE,
        body(b"GET /ok HTTP/1.1\r\n" + b"\r\n" * 1000),
        body(b"POST /echo HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
    ]
    for sample in samples:
        answer = post(client, sample)
        assert 200 <= answer.status_code < 500, (sample[:40], answer.status_code)
        if answer.status_code != 200:
            problem(answer)
    assert [r.status for r in batch(client, sub("GET", "/ok"))] == [200]
