"""The multipart framing of a batch: delimiters, boundaries, part headers, empty parts.

A malformed batch is refused whole with a ``400`` (``413`` past a limit) problem whose detail
says what is wrong and whose ``part`` names the part (1-based); nothing runs, and the endpoint
answers the next batch normally; on every front end alike.
"""

from __future__ import annotations

import pytest

from ..batching import sub
from .conftest import Server
from .wire import BOUNDARY, CLOSE, DELIMITER, MIME, OK, batch, body, part, post


def test_a_truncated_body_is_refused_naming_the_part(server: Server) -> None:
    whole = body(OK, b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    document = server.refused(whole[: whole.index(b"hello") + 2])
    assert document["part"] == 2
    assert "close delimiter" in document["detail"]


def test_a_missing_close_delimiter_is_refused(server: Server) -> None:
    document = server.refused(part(OK) + part(OK))
    assert document["part"] == 2
    assert "close delimiter" in document["detail"]


def test_a_boundary_absent_from_the_body_is_refused(server: Server) -> None:
    document = server.refused(body(OK), content_type="multipart/mixed; boundary=other")
    assert "--other" in document["detail"]
    assert "never occurs" in document["detail"]


def test_an_empty_body_is_refused(server: Server) -> None:
    document = server.refused(b"")
    assert "empty" in document["detail"]


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
def test_an_invalid_boundary_is_refused(server: Server, boundary: str) -> None:
    data = body(OK).replace(BOUNDARY.encode(), boundary.encode("utf-8"))
    document = server.refused(data, content_type=f'multipart/mixed; boundary="{boundary}"')
    assert "boundary" in document["detail"]


def test_a_boundary_of_exactly_70_characters_is_accepted(server: Server) -> None:
    boundary = "b" * 70
    data = body(OK).replace(BOUNDARY.encode(), boundary.encode())
    answer = post(server.base, "/batch", data, f"multipart/mixed; boundary={boundary}")
    assert [(r.status, r.body) for r in answer.parts()] == [(200, b"ok")]


def test_multipart_mixed_without_a_boundary_is_refused(server: Server) -> None:
    document = server.refused(body(OK), content_type="multipart/mixed")
    assert "boundary" in document["detail"]


def test_a_part_without_the_blank_line_after_its_headers_is_refused(server: Server) -> None:
    data = part(OK) + DELIMITER + b"\r\n" + MIME + DELIMITER + b"\r\n" + MIME + b"\r\n" + OK
    document = server.refused(data + b"\r\n" + CLOSE)
    assert document["part"] == 2
    assert "blank line" in document["detail"]


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
def test_invalid_part_headers_are_refused_naming_the_part(server: Server, mime: bytes) -> None:
    document = server.refused(part(OK) + part(OK, mime=mime) + CLOSE)
    assert document["part"] == 2


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        (b"text/plain", "application/http"),
        (b"multipart/mixed; boundary=inner", "'--inner' never occurs"),  # a changeset's
    ],
)
def test_a_part_that_is_not_application_http_is_refused(
    server: Server, content_type: bytes, words: str
) -> None:
    data = part(OK) + part(OK, mime=b"Content-Type: " + content_type + b"\r\n") + CLOSE
    document = server.refused(data)
    assert document["part"] == 2
    assert words in document["detail"]


@pytest.mark.parametrize(
    "empty",
    [
        part(b""),
        part(b"\r\n\r\n\r\n"),
        part(b"", mime=b""),  # not even MIME headers
        DELIMITER + b"\r\n",  # a delimiter right after a delimiter
    ],
)
def test_an_empty_part_is_refused_not_dropped(server: Server, empty: bytes) -> None:
    document = server.refused(part(OK) + empty + part(OK) + CLOSE)
    assert document["part"] == 2


def test_an_enormous_number_of_empty_parts_stops_at_the_first(server: Server) -> None:
    # Errors come in the order of the body, whatever its chunking: the first empty part is
    # refused before the count of parts is reached, and reading stops there.
    data = (DELIMITER + b"\r\n\r\n") * 200_000 + CLOSE  # 5 MB of empty parts
    document = server.refused(data)
    assert document["part"] == 1
    assert "no HTTP request" in document["detail"]


def test_an_enormous_number_of_tiny_parts_stops_at_max_parts(server: Server) -> None:
    tiny = DELIMITER + b"\r\n\r\n" + OK
    document = server.refused(tiny * 200_000 + CLOSE, 413)  # 9 MB of tiny parts
    assert document["limit"] == "max_parts"
    assert document["value"] == 100
    assert document["part"] == 101


@pytest.mark.parametrize(
    "length",
    [b"9" * 5000, b"1" + b"0" * 19, b"0" * 5000 + b"3"],
    ids=["5000-digits", "20-digits", "leading-zeros"],
)
def test_a_part_content_length_of_many_digits_is_a_clear_refusal(
    server: Server, length: bytes
) -> None:
    # Python's int() refuses over 4,300 digits with a ValueError (it was a 500), and takes
    # time that grows with the square of the digits below that.
    message = b"POST /echo HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\nabc"
    if length.lstrip(b"0") == b"3":  # leading zeros, and a number of a sane size: read
        (answer,) = post(server.base, "/batch", body(message)).parts()
        assert (answer.status, answer.body) == (200, b"abc")
        return
    document = server.refused(body(message))
    assert document["part"] == 1
    assert "invalid Content-Length" in document["detail"]
    assert len(document["detail"]) < 200  # the value is not echoed whole


def test_a_stream_of_hostile_batches_never_gets_a_500(server: Server) -> None:
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
        answer = post(server.base, "/batch", sample)
        assert 200 <= answer.status < 500, (sample[:40], answer.status)
        if answer.status != 200:
            answer.problem()
    assert [r.status for r in batch(server.base, "/batch", sub("GET", "/ok"))] == [200]
