"""The client's reader of multipart batch answers: the one-pass reading of the answer this
package's server writes gives what the general reader gives, for any bytes; anything else
goes the general way. Read as it arrives (:class:`AnswerStream`), in any pieces, an answer
gives the same answers, each as soon as its part is complete, and fails where it fails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_batch.wire import http1, multipart_answers
from flask_batch.wire.errors import BatchError
from flask_batch.wire.media_type import boundary_of
from flask_batch.wire.model import Group, SubRequest, SubResponse
from flask_batch.wire.multipart_answers import (
    AnswerStream,
    ReadAnswer,
    ResponseWriter,
    read_answers,
)

from .properties import PROPERTY

JSON = (("Content-Type", "application/json"),)


def _answer(
    pairs: list[tuple[SubRequest, SubResponse]], *, odata: bool = False, flat: bool = False
) -> tuple[str, bytes]:
    writer = ResponseWriter(odata=odata, flat=flat)
    body = b"".join(writer.part(response, request) for request, response in pairs)
    return writer.content_type, body + writer.close()


def _calls(count: int) -> list[tuple[SubRequest, SubResponse]]:
    return [
        (
            SubRequest("GET", f"/items/{index}", (), b"", f"<run+{index}>"),
            SubResponse(200, "OK", JSON, b"[%s]" % (b"1" * (index % 2))),
        )
        for index in range(count)
    ]


def _outcome(content_type: str, body: bytes | bytearray) -> object:
    """The answers read, or the error: its type, message and part."""
    try:
        return read_answers(content_type, body)  # type: ignore[arg-type]  # a bytearray too
    except BatchError as error:
        return (type(error).__name__, str(error), error.part)


def _general(content_type: str, body: bytes) -> object:
    """What the general reader makes of ``body`` (it reads all but bytes)."""
    return _outcome(content_type, bytearray(body))


def _streamed(content_type: str, body: bytes, sizes: list[int]) -> object:
    """The answers ``body`` gives read as it arrives, in pieces of ``sizes`` (in turn), or
    ``"error"``; each piece gives the answers it completed, in order."""
    stream = AnswerStream(content_type)
    given: list[ReadAnswer] = []
    at = turn = 0
    while at < len(body):
        size = sizes[turn % len(sizes)]
        turn += 1
        given += stream.feed(body[at : at + size])
        at += size
        assert given == stream.answers
    try:
        answers = stream.close()
    except BatchError:
        return "error"
    assert answers[: len(given)] == given
    return answers


def _alike_streamed(content_type: str, body: bytes, sizes: list[int]) -> None:
    """Read as it arrives, ``body`` gives what :func:`read_answers` gives, or fails too."""
    whole = _outcome(content_type, body)
    assert _streamed(content_type, body, sizes) == ("error" if isinstance(whole, tuple) else whole)


@pytest.mark.parametrize("odata", [False, True])
def test_the_servers_answer_is_read_in_one_pass_alike(odata: bool) -> None:
    content_type, body = _answer(_calls(5), odata=odata)
    plain = multipart_answers._read_plain(boundary_of(content_type), body)
    assert plain is not None
    assert plain == _general(content_type, body)
    assert plain[1] == ReadAnswer(
        "<run+1>", SubResponse(200, "OK", (*JSON, ("Content-Length", "3")), b"[1]"), 2, False
    )


def test_each_distinct_head_is_read_once_per_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """100 answers with two distinct heads: two heads read, per answer read."""
    read: list[bytes | bytearray] = []
    parse = http1.parse_response_head

    def counted(data: bytes | bytearray, part: int | None) -> tuple[http1.ResponseHead, int]:
        read.append(data)
        return parse(data, part)

    monkeypatch.setattr(multipart_answers, "parse_response_head", counted)
    content_type, body = _answer(_calls(100))
    assert len(read_answers(content_type, body)) == 100
    assert len(read) == 2
    read_answers(content_type, body)
    assert len(read) == 4  # nothing is kept from one answer to the next


def test_a_head_the_cache_is_full_for_is_still_read() -> None:
    pairs = [
        (SubRequest("GET", "/", (), b"", None), SubResponse(200, "OK", (("X-N", str(n)),), b""))
        for n in range(multipart_answers._KNOWN_HEADS + 10)
    ]
    content_type, body = _answer(pairs)
    answers = read_answers(content_type, body)
    assert [a.response.headers[0] for a in answers] == [("X-N", str(n)) for n in range(266)]


#: One part's headers and a response with no body: an answer's first part, after "--b".
_ONE = b"\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"


@pytest.mark.parametrize(
    "body",
    [
        b"preamble\r\n--b" + _ONE + b"\r\n--b--",
        b"--b" + _ONE.replace(b"Content-Type", b"content-type") + b"\r\n--b--",
        b"--b " + _ONE + b"\r\n--b--",
        b"--b" + _ONE.replace(b"\r\nC", b"\nC", 1) + b"\r\n--b--",
        b"--b" + _ONE.replace(b"http\r\n", b"http\r\nContent-ID: a \r\n") + b"\r\n--b--",
    ],
)
def test_other_shapes_are_read_the_general_way(body: bytes) -> None:
    assert multipart_answers._read_plain("b", body) is None
    assert _outcome("multipart/mixed; boundary=b", body) == _general(
        "multipart/mixed; boundary=b", body
    )


_PART = b"Content-Type: application/http\r\n\r\n"


@pytest.mark.parametrize("near", [b"\r\n--b-", b"\r\n--bxy", b"\r\n--b -", b"\n--b\r"])
def test_a_near_delimiter_is_content(near: bytes) -> None:
    """A line that begins like a delimiter but is none belongs to the part (the one pass
    leaves such an answer to the general reader), even when what follows it looks like the
    next part."""
    first = b"HTTP/1.1 200 OK\r\n\r\nab" + near + _PART + b"HTTP/1.1 202 Accepted\r\n\r\n"
    body = b"--b\r\n" + _PART + first + b"\r\n--b\r\n" + _PART + b"HTTP/1.1 201 Created\r\n\r\n"
    body += b"\r\n--b--\r\n"
    answers = read_answers("multipart/mixed; boundary=b", body)
    assert [(a.response.status, a.response.body) for a in answers] == [
        (200, first.partition(b"\r\n\r\n")[2]),
        (201, b""),
    ]
    assert answers == _general("multipart/mixed; boundary=b", body)


@pytest.mark.parametrize(
    ("body", "part"),
    [
        (b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 2x OK\r\n\r\n\r\n--b--", 1),
        # The body's end is refused before the empty part's response (read after all parts).
        (b"--b\r\nContent-Type: application/http\r\n\r\n\r\n--b\r\n", 2),
        (b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\r\n--b\r\n", 2),
        # Content-Lengths that differ: refused in the one pass and the general reading alike.
        (
            b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n"
            b"Content-Length: 1\r\n\r\nx\r\n--b\r\nContent-Type: application/http\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx\r\n--b--",
            2,
        ),
    ],
)
def test_an_error_is_the_general_readers(body: bytes, part: int) -> None:
    content_type = "multipart/mixed; boundary=b"
    outcome = _outcome(content_type, body)
    assert isinstance(outcome, tuple)
    assert outcome[2] == part
    assert outcome == _general(content_type, body)


_SNIPPETS = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b"-",
    b"--",
    b"\x00",
    b"Content-Length: 3\r\n",
    b"Content-Length: x\r\n",
    b"HTTP/1.1 204 No\r\n",
    b"Content-ID: x \r\n",
    b"Content-Transfer-Encoding: binary\r\n",
]
#: Stands for the answer's delimiter in an edit; then what may follow it.
_DELIMITER = b"<delimiter>"
_AFTER_DELIMITER = [b"", b"-", b"x", b" \r\n", b"\t\n", b"\n", b"--", b"\r\n", b"\r"]


@PROPERTY
@given(
    responses=st.lists(
        st.tuples(
            st.sampled_from([200, 204, 304, 404, 500]),
            st.binary(max_size=40) | st.sampled_from([b"", b"\r\n\r\n", b"--", b"\n--"]),
            st.sampled_from([None, "<a+1>", "7", "<x>"]),
        ),
        min_size=1,
        max_size=6,
    ),
    grouped=st.booleans(),
    odata=st.booleans(),
    flat=st.booleans(),
    edits=st.lists(
        st.tuples(
            st.floats(0, 1),
            st.integers(0, 3),
            st.sampled_from(_SNIPPETS) | st.sampled_from(_AFTER_DELIMITER).map(_DELIMITER.__add__),
        ),
        max_size=3,
    ),
    sizes=st.lists(st.integers(1, 80), min_size=1, max_size=5),
)
def test_any_answer_is_read_as_the_general_reader_reads_it(
    *,
    responses: list[tuple[int, bytes, str | None]],
    grouped: bool,
    odata: bool,
    flat: bool,
    edits: list[tuple[float, int, bytes]],
    sizes: list[int],
) -> None:
    """Answers the server writes (changesets too), edited: cut, or with framing inserted;
    read whole, and as they arrive in pieces of ``sizes``."""
    group = Group("g", 2, 0) if grouped and len(responses) >= 2 else None
    pairs = [
        (
            SubRequest("PATCH", "/", (), b"", content_id, group=group if index < 2 else None),
            SubResponse(status, "", JSON, body),
        )
        for index, (status, body, content_id) in enumerate(responses)
    ]
    content_type, body = _answer(pairs, odata=odata, flat=flat)
    boundary = boundary_of(content_type).encode()
    for at, cut, snippet in edits:
        place = int(at * len(body))
        inserted = snippet
        if snippet.startswith(_DELIMITER):  # a delimiter, or something like one
            inserted = b"\r\n--" + boundary + snippet[len(_DELIMITER) :]
        body = body[:place] + inserted + body[place + cut :]
    assert _outcome(content_type, body) == _general(content_type, body)
    _alike_streamed(content_type, body, sizes)


def test_an_answer_is_read_as_soon_as_its_part_is_complete() -> None:
    """Fed up to the last part's end, every answer but the last is out; the last comes with
    the next delimiter, and the close delimiter ends the reading."""
    content_type, body = _answer(_calls(5))
    last = body.rindex(b"\r\n--")  # before the close delimiter
    fourth_end = body.rindex(b"\r\n--", 0, last)
    stream = AnswerStream(content_type)
    assert [a.content_id for a in stream.feed(body[:fourth_end])] == [
        f"<run+{n}>" for n in range(3)
    ]
    assert [a.content_id for a in stream.feed(body[fourth_end:last])] == ["<run+3>"]
    assert [a.content_id for a in stream.feed(body[last:])] == ["<run+4>"]
    assert stream.close() == read_answers(content_type, body)


@pytest.mark.parametrize("odata", [False, True])
@pytest.mark.parametrize("sizes", [[1], [7], [1, 200, 3], [10**6]])
def test_the_servers_answer_read_as_it_arrives_is_read_alike(odata: bool, sizes: list[int]) -> None:
    group = Group("g", 2, 40)
    pairs = _calls(40) + [
        (
            SubRequest("POST", "/", (), b"", f"<g+{n}>", group=group),
            SubResponse(201, "Created", JSON, b"{}"),
        )
        for n in range(2)
    ]
    content_type, body = _answer(pairs, odata=odata)
    _alike_streamed(content_type, body, sizes)
    assert len(read_answers(content_type, body)) == 42


@pytest.mark.parametrize(
    ("body", "part"),
    [
        # The first part's response is refused as soon as it is read, before the body ends.
        (b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 2x OK\r\n\r\n\r\n--b\r\n", 1),
        (b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\r\n--b\r\n", 2),
        (b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 1),
        # Content-Lengths that differ: refused in the one pass and the general reading alike.
        (
            b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n"
            b"Content-Length: 1\r\n\r\nx\r\n--b\r\nContent-Type: application/http\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx\r\n--b--",
            2,
        ),
    ],
)
def test_an_answer_read_as_it_arrives_fails_where_it_goes_wrong(body: bytes, part: int) -> None:
    """Nothing is raised while feeding; closing raises the first error, and what was read
    before it stays read."""
    stream = AnswerStream("multipart/mixed; boundary=b")
    for byte in range(len(body)):
        stream.feed(body[byte : byte + 1])
    with pytest.raises(BatchError) as raised:
        stream.close()
    assert raised.value.part == part
    assert len(stream.answers) == part - 1
    assert stream.feed(b"\r\n--b--") == []  # stopped at the error


def test_an_answer_without_a_boundary_cannot_be_read_as_it_arrives() -> None:
    with pytest.raises(BatchError):
        AnswerStream("multipart/mixed")


def _shaped_answer(shape: str, size: int) -> bytes:
    """An answer of about ``size`` bytes, of a shape that could make a reader look again."""
    part = b"--b\r\nContent-Type: application/http\r\n"
    head = b"\r\nHTTP/1.1 200 OK\r\n\r\n"
    if shape == "one large part":
        return part + head + b"x" * size + b"\r\n--b--"
    if shape == "many parts":
        one = part + head + b"ok\r\n"
        return one * (size // len(one)) + b"--b--"
    if shape == "near delimiters":  # "\n--" again and again, never "\n--b"
        return part + head + b"\n--a" * (size // 4) + b"\r\n--b--"
    # "long headers": a Content-ID past what the one pass looks at, then the general reader
    one = part + b"Content-ID: " + b"i" * 2000 + b"\r\n" + head + b"ok\r\n"
    return one * (size // len(one)) + b"--b--"


_SHAPES = ["one large part", "many parts", "near delimiters", "long headers"]


@pytest.mark.parametrize("shape", _SHAPES)
def test_reading_as_it_arrives_works_linearly(shape: str) -> None:
    """Fed a byte at a time, the reading looks at each byte a bounded number of times,
    whatever the size (its work meter, as the request reader's in test_linear_time.py)."""
    per_byte = []
    for size in (16 * 1024, 64 * 1024):
        body = _shaped_answer(shape, size)
        stream = AnswerStream("multipart/mixed; boundary=b")
        for at in range(len(body)):
            stream.feed(body[at : at + 1])
        assert stream.close() == read_answers("multipart/mixed; boundary=b", body)
        per_byte.append(stream.scanned / len(body))
    assert max(per_byte) < 8, per_byte
    assert per_byte[1] < per_byte[0] * 1.5 + 0.5, per_byte  # does not grow with the size


@pytest.mark.parametrize(("extra", "in_one_pass"), [(-1, True), (0, True), (1, False)])
@pytest.mark.parametrize("sizes", [[1], [10**6]])
def test_part_headers_at_the_one_pass_limit(
    extra: int, in_one_pass: bool, sizes: list[int]
) -> None:
    """A part's header block as long as the one pass looks for is read in one pass; a byte
    longer, the general reader takes over; both read what the whole reading does."""
    most = multipart_answers._PLAIN_HEADERS_MOST
    prefix = b"Content-Type: application/http\r\nContent-ID: "
    content_id = b"i" * (most - len(prefix) - 4 + extra)
    one = b"--b\r\n" + prefix + content_id + b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\nok\r\n"
    body = one * 3 + b"--b--"
    _alike_streamed("multipart/mixed; boundary=b", body, sizes)
    stream = AnswerStream("multipart/mixed; boundary=b")
    for at in range(0, len(body), sizes[0]):
        stream.feed(body[at : at + sizes[0]])
    assert [a.content_id for a in stream.close()] == [content_id.decode()] * 3
    assert (stream._reader is None) is in_one_pass
