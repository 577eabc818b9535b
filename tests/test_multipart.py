"""The streaming multipart/mixed reader and writer of ``flask_batch.wire.multipart``.

Why: the reader is ours (docs/design.md section 4: no library accepts what real clients send), so it
must be pinned down on its own: both line-end styles, every RFC 2046 boundary character,
preambles and epilogues, lines that only look like delimiters, exact binary contents, a result
independent of how the body is chunked, limits enforced at their exact edge while memory stays
bounded, and a precise refusal of every malformed body. Python's ``email`` package is the
independent oracle on the well-formed CRLF bodies it can read.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flask_batch.wire.errors import (
    BatchError,
    LimitExceeded,
    MalformedBatch,
    UnsupportedMediaType,
)
from flask_batch.wire.fields import encode_field
from flask_batch.wire.media_type import boundary_of, new_boundary
from flask_batch.wire.model import KIB, MIB, Limits, Part
from flask_batch.wire.multipart import MultipartReader, encode_close, encode_part

from .properties import PROPERTY

# --------------------------------------------------------------------------------------------
# Helpers


def read_all(boundary: str, body: bytes, limits: Limits | None = None) -> list[Part]:
    """The parts of ``body`` fed in one piece."""
    reader = MultipartReader(boundary, limits or Limits())
    return reader.feed(body) + reader.close()


def read_chunks(boundary: str, chunks: Iterable[bytes], limits: Limits | None = None) -> list[Part]:
    """The parts of a body fed as ``chunks``."""
    reader = MultipartReader(boundary, limits or Limits())
    parts: list[Part] = []
    for chunk in chunks:
        parts += reader.feed(chunk)
    return parts + reader.close()


def split_every(body: bytes, size: int) -> Iterator[bytes]:
    return (body[start : start + size] for start in range(0, len(body), size))


def split_at(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({0, len(body), *(cut % (len(body) + 1) for cut in cuts)})
    return [body[start:end] for start, end in itertools.pairwise(points)]


Outcome = list[Part] | tuple[str, str, int | None]


def outcome(boundary: str, chunks: Iterable[bytes], limits: Limits | None = None) -> Outcome:
    """The parts, or the refusal as (class name, message, part): comparable across chunkings."""
    try:
        return read_chunks(boundary, chunks, limits)
    except BatchError as error:
        return type(error).__name__, str(error), error.part


def samples_dir() -> Path:
    local = Path(__file__).parent / "data" / "wire-samples"
    if local.is_dir():
        return local
    return Path(__file__).resolve().parents[2] / "shared" / "wire-samples"


SAMPLE_PATHS = sorted(samples_dir().glob("*/*.request.raw"))


def sample_body(path: Path) -> tuple[str, bytes]:
    """(boundary, multipart body) of a captured request: the outer HTTP head split off."""
    head, separator, body = path.read_bytes().partition(b"\r\n\r\n")
    assert separator
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().decode("latin-1")
    assert int(fields[b"content-length"]) == len(body), f"truncated capture {path}"
    return boundary_of(fields[b"content-type"]), body


def test_the_wire_samples_are_there() -> None:
    # Google's clients (4) and the OData family's (7: tests/test_odata_wire_samples.py).
    assert len(SAMPLE_PATHS) == 11, SAMPLE_PATHS


# --------------------------------------------------------------------------------------------
# Line ends, boundaries, preamble, epilogue, headers


def test_crlf_body() -> None:
    body = (
        b"--b\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-ID: <1>\r\n"
        b"\r\n"
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"\r\n--b\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"two\r\nlines"
        b"\r\n--b--\r\n"
    )
    assert read_all("b", body) == [
        Part(
            (("Content-Type", "application/http"), ("Content-ID", "<1>")),
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        Part((("Content-Type", "text/plain"),), b"two\r\nlines"),
    ]


def test_bare_lf_body() -> None:
    body = (
        b"--b\n"
        b"Content-Type: application/http\n"
        b"\n"
        b"GET /a HTTP/1.1\nHost: x\n\n"
        b"\n--b\n"
        b"Content-Type: text/plain\n"
        b"\n"
        b"two\nlines"
        b"\n--b--\n"
    )
    assert read_all("b", body) == [
        Part((("Content-Type", "application/http"),), b"GET /a HTTP/1.1\nHost: x\n\n"),
        Part((("Content-Type", "text/plain"),), b"two\nlines"),
    ]


def test_mixed_line_ends_only_one_line_end_belongs_to_the_delimiter() -> None:
    # CRLF framing with LF content and the reverse: the CR (if any) and the LF just before a
    # delimiter belong to it, every other byte to the content.
    body = b"--b\nA: 1\r\n\nx\r\n\r\n--b\r\nB: 2\n\r\ny\n\n--b--"
    assert read_all("b", body) == [
        Part((("A", "1"),), b"x\r\n"),
        Part((("B", "2"),), b"y\n"),
    ]


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        (
            'multipart/mixed; boundary="===============7179403124436758522=="',
            "=" * 15 + "7179403124436758522==",
        ),
        ("multipart/mixed; boundary===abc==", "==abc=="),
        ("multipart/mixed; boundary=simple", "simple"),
        ("multipart/mixed;boundary=simple", "simple"),
        ("Multipart/MIXED; Boundary=Case", "Case"),
        ('multipart/mixed; charset="utf-8"; boundary="x"', "x"),
        ('multipart/mixed; boundary="\'()+_,-./:=?"', "'()+_,-./:=?"),
        ('multipart/mixed; boundary="with a space"', "with a space"),
        ('multipart/mixed; boundary="gc0p4Jq0M2Yt08jU534c0p"', "gc0p4Jq0M2Yt08jU534c0p"),
    ],
)
def test_boundary_of_accepts(content_type: str, boundary: str) -> None:
    assert boundary_of(content_type) == boundary


@pytest.mark.parametrize(
    "boundary",
    [
        "===============7179403124436758522==",
        "'()+_,-./:=?",  # every RFC 2046 bchar that is not a letter or digit
        "a.b(x)+y?z",  # regex metacharacters must be matched literally
        "with a space",
        " leading space",
        "0",
        "x" * 70,
    ],
)
@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_read_with_any_legal_boundary(boundary: str, newline: bytes) -> None:
    dash = b"--" + boundary.encode()
    body = (
        dash + newline + b"A: 1" + newline + newline + b"one"
        + newline + dash + newline + newline + b"two"
        + newline + dash + b"--" + newline
    )  # fmt: skip
    assert read_all(boundary, body) == [Part((("A", "1"),), b"one"), Part((), b"two")]


def test_boundary_with_regex_metacharacters_is_literal() -> None:
    # "." and "+" and "?" would match other bytes if the boundary were used as a pattern.
    body = b"--a.b+\r\n\r\nX\r\n--aXb+\r\n--aab\r\n--a.b+--"
    assert read_all("a.b+", body) == [Part((), b"X\r\n--aXb+\r\n--aab")]


def test_preamble_and_epilogue_are_ignored() -> None:
    body = (
        b"This is the preamble. --b is not a delimiter here,\r\n"
        b"--bb neither, nor --b-- in the middle of a line.\r\n"
        b"--b\r\n"
        b"\r\n"
        b"content"
        b"\r\n--b--\r\n"
        b"This is the epilogue.\r\n--b\r\nA: 1\r\n\r\nnot a part\r\n--b--\r\n"
    )
    assert read_all("b", body) == [Part((), b"content")]


def test_preamble_line_that_is_a_close_delimiter_means_no_parts() -> None:
    with pytest.raises(MalformedBatch, match="no parts"):
        read_all("b", b"preamble\r\n--b--\r\n--b\r\n\r\nx\r\n--b--")


@pytest.mark.parametrize("end", [b"", b"\r\n", b"\n", b"  \t", b"\r\nepilogue"])
def test_close_delimiter_with_or_without_trailing_line_end(end: bytes) -> None:
    body = b"--b\r\nA: 1\r\n\r\nlast\r\n--b--" + end
    assert read_all("b", body) == [Part((("A", "1"),), b"last")]
    assert read_chunks("b", split_every(body, 1)) == [Part((("A", "1"),), b"last")]


def test_transport_padding_after_delimiter() -> None:
    body = b"--b \t\r\nA: 1\r\n\r\none\r\n--b\t \nB: 2\r\n\r\ntwo\r\n--b--"
    assert read_all("b", body) == [Part((("A", "1"),), b"one"), Part((("B", "2"),), b"two")]


def test_folded_mime_headers_are_unfolded() -> None:
    body = (
        b"--b\r\n"
        b"X-Long: one\r\n"
        b"   two\r\n"
        b"\tthree\r\n"
        b"Content-Type:application/http\r\n"
        b"X-Spaces :  padded value  \r\n"
        b"\r\n"
        b"body\r\n--b--\r\n"
    )
    assert read_all("b", body) == [
        Part(
            (
                ("X-Long", "one two three"),
                ("Content-Type", "application/http"),
                ("X-Spaces", "padded value"),
            ),
            b"body",
        )
    ]


def test_header_values_are_latin_1_and_repeats_are_kept_in_order() -> None:
    body = b"--b\r\nX-A: caf\xe9\r\nX-A: second\r\nx-a: third\r\n\r\n\r\n--b--"
    (part,) = read_all("b", body)
    assert part.headers == (("X-A", "caf\xe9"), ("X-A", "second"), ("x-a", "third"))
    assert part.header("X-a") == "caf\xe9"
    assert part.header("missing") is None


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        (b"--b\r\nA: 1\r\n\r\n\r\n--b--", [Part((("A", "1"),), b"")]),
        (b"--b\nA: 1\n\n\n--b--", [Part((("A", "1"),), b"")]),
        # The blank line that ends the headers also serves as the delimiter's line end.
        (b"--b\r\nA: 1\r\n\r\n--b--", [Part((("A", "1"),), b"")]),
        (b"--b\r\n\r\n\r\n--b--", [Part((), b"")]),
        (b"--b\r\n\r\n--b\r\n\r\n--b--", [Part((), b""), Part((), b"")]),
        (b"--b\r\n\r\n\r\n\r\n--b--", [Part((), b"\r\n")]),
    ],
)
def test_empty_content(body: bytes, parts: list[Part]) -> None:
    assert read_all("b", body) == parts
    for size in range(1, len(body) + 1):
        assert read_chunks("b", split_every(body, size)) == parts


@pytest.mark.parametrize(
    "line",
    [
        b"--bb",
        b"--b-",
        b"--b-x",
        b"--bX--",
        b"--b x",
        b"--b\tx",
        b"--b \r",
        b"--b\rx",
        b"---b",
        b" --b",
        b"x--b",
        b"--B",
    ],
)
def test_line_starting_like_the_boundary_is_content(line: bytes) -> None:
    content = b"before\r\n" + line + b"\r\nafter"
    body = b"--b\r\n\r\n" + content + b"\r\n--b--\r\n"
    assert read_all("b", body) == [Part((), content)]
    assert read_chunks("b", split_every(body, 1)) == [Part((), content)]


def test_delimiter_at_content_end_without_line_end_is_content() -> None:
    # "--b" right after a line end but at the very end of the body is no delimiter: the body
    # ends inside the part.
    with pytest.raises(MalformedBatch, match="ended inside the part") as info:
        read_all("b", b"--b\r\n\r\nx\r\n--b")
    assert info.value.part == 1


BINARY_BOUNDARY = "boundary42"
BINARY_CONTENT = (
    bytes(range(256))
    + b"\r"
    + b"\n"
    + b"--"
    + b"\r\n--"
    + b"\r\n--bound"
    + b"\n--boundary4"
    + b"\r\n--boundary42x"
    + b"\n--boundary420\r\n"
    + b"\r\r\n\n\r"
    + bytes(range(255, -1, -1))
    + b"--boundary42"
    + b"\r"
)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_binary_content_is_kept_exactly(newline: bytes) -> None:
    # With bare-LF framing a CR that ends the content is read as part of a CRLF delimiter
    # line end (the two cannot be told apart), so that content ends one byte earlier.
    content = BINARY_CONTENT if newline == b"\r\n" else BINARY_CONTENT[:-1]
    dash = b"--" + BINARY_BOUNDARY.encode()
    body = dash + newline + newline + content + newline + dash + b"--" + newline
    expected = [Part((), content)]
    assert read_all(BINARY_BOUNDARY, body) == expected
    for size in (1, 2, 3, 5, 11, 64, 255):
        assert read_chunks(BINARY_BOUNDARY, split_every(body, size)) == expected


@pytest.mark.parametrize("tail", [b"\r", b"\n", b"\r\n", b"\r\r", b"\n\n", b"\n\r"])
def test_line_ends_at_content_end_are_kept(tail: bytes) -> None:
    content = b"data" + tail
    body = encode_part("b", (), content) + encode_close("b")
    assert read_all("b", body) == [Part((), content)]


# --------------------------------------------------------------------------------------------
# Chunking never changes the result


CRAFTED_CRLF = (
    b"preamble with --xyz inside\r\n--xyzzy\r\n--xyz \r\n"
    b"Content-Type: application/http\r\n"
    b"X-Folded: a\r\n b\r\n"
    b"\r\n"
    b"POST /x HTTP/1.1\r\n\r\n\x00\r\r\n--xyz-\r\n--xyzz\r\n"
    b"\r\n--xyz\r\n"
    b"\r\n"
    b"\r\n--xyz\r\n"
    b"A: 1\r\n"
    b"\r\n" + bytes(range(256)) + b"\r\n--xyz--\r\nepilogue\r\n--xyz\r\n"
)
CRAFTED_LF = CRAFTED_CRLF.replace(b"\r\n", b"\n")
CRAFTED_TRUNCATED = CRAFTED_CRLF[: CRAFTED_CRLF.index(b"\r\n--xyz--")]


@pytest.mark.parametrize(
    ("boundary", "body"),
    [
        *((sample_body(path)) for path in SAMPLE_PATHS),
        ("xyz", CRAFTED_CRLF),
        ("xyz", CRAFTED_LF),
        ("xyz", CRAFTED_TRUNCATED),
    ],
    ids=[
        *(f"{path.parent.name}/{path.stem}" for path in SAMPLE_PATHS),
        "crafted-crlf",
        "crafted-lf",
        "truncated",
    ],
)
def test_chunk_size_sweep(boundary: str, body: bytes) -> None:
    whole = outcome(boundary, [body])
    assert whole  # parts were read, or a refusal
    for size in range(1, 101):
        assert outcome(boundary, split_every(body, size)) == whole, size


def test_crafted_bodies_read_as_expected() -> None:
    # So the sweep above compares real results, not two identical mistakes.
    parts = read_all("xyz", CRAFTED_CRLF)
    assert parts == [
        Part(
            (("Content-Type", "application/http"), ("X-Folded", "a b")),
            b"POST /x HTTP/1.1\r\n\r\n\x00\r\r\n--xyz-\r\n--xyzz\r\n",
        ),
        Part((), b""),
        Part((("A", "1"),), bytes(range(256))),
    ]
    lf_parts = read_all("xyz", CRAFTED_LF)
    assert [part.headers for part in lf_parts] == [part.headers for part in parts]
    assert lf_parts[2].content == bytes(range(256))
    truncated = outcome("xyz", [CRAFTED_TRUNCATED])
    assert isinstance(truncated, tuple)
    assert truncated[0] == "MalformedBatch"
    assert truncated[2] == 3


def test_wire_samples_match_the_email_package() -> None:
    # The samples have bare-LF line ends, which `email` reads too: an independent oracle.
    # Changesets (multipart parts) are read again, as the server will read their members.
    for path in SAMPLE_PATHS:
        boundary, body = sample_body(path)
        parts = read_all(boundary, body)
        oracle = email_parts(boundary, body)
        assert len(parts) == len(oracle) >= 1, path
        for part, expected in zip(parts, oracle, strict=True):
            assert list(part.headers) == list(expected.raw_items())
            if expected.is_multipart():  # a changeset: its members, read in turn, as email's
                members = read_all(boundary_of(expected["Content-Type"]), bytes(part.content))
                oracle_members = expected.get_payload()
                assert isinstance(oracle_members, list)
                assert [member.content for member in members] == [
                    member.get_payload(decode=True)
                    for member in oracle_members
                    if isinstance(member, email.message.Message)
                ], path
            else:
                assert part.content == expected.get_payload(decode=True)


# --------------------------------------------------------------------------------------------
# Limits at their exact edge


def three_parts(newline: bytes = b"\r\n") -> bytes:
    body = b""
    for index in range(3):
        body += b"--b" + newline + b"X-A: 1" + newline + newline + b"p%d" % index + newline
    return body + b"--b--" + newline


def check_limit(error: LimitExceeded, limit: str, value: int, part: int | None) -> None:
    assert (error.limit, error.value, error.part, error.status) == (limit, value, part, 413)
    problem = error.problem()
    assert problem["status"] == 413
    assert problem["limit"] == limit
    assert problem["value"] == value
    assert problem.get("part") == part
    assert str(value) in problem["detail"]


@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_max_parts_exactly_and_one_more(size: int) -> None:
    body = three_parts()
    assert len(read_chunks("b", split_every(body, size), Limits(max_parts=3))) == 3
    with pytest.raises(LimitExceeded) as info:
        read_chunks("b", split_every(body, size), Limits(max_parts=2))
    check_limit(info.value, "max_parts", 2, 3)


@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_max_body_size_exactly_and_one_more(size: int) -> None:
    # Every byte counts: preamble and epilogue too.
    body = b"preamble\r\n" + three_parts() + b"epilogue"
    assert len(read_chunks("b", split_every(body, size), Limits(max_body_size=len(body)))) == 3
    with pytest.raises(LimitExceeded) as info:
        read_chunks("b", split_every(body, size), Limits(max_body_size=len(body) - 1))
    check_limit(info.value, "max_body_size", len(body) - 1, None)


def part_with_size(boundary: str, newline: bytes, content: bytes) -> tuple[bytes, int]:
    """A body whose second part is ``content``; and that part's size as the limits count it.

    The size of a part is its header lines, the blank line and its content: from just after
    the delimiter line to just before the line end that belongs to the next delimiter.
    """
    dash = b"--" + boundary.encode()
    headers = b"Content-Type: application/http" + newline + b"X-A: 1" + newline + newline
    body = (
        dash + newline + newline + b"small" + newline
        + dash + newline + headers + content + newline
        + dash + b"--" + newline
    )  # fmt: skip
    return body, len(headers) + len(content)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
@pytest.mark.parametrize("content", [b"x" * 50, b"", b"\r\n" * 20, b"ends with CR\r"])
def test_max_part_size_exactly_and_one_more(newline: bytes, content: bytes) -> None:
    body, size = part_with_size("b", newline, content)
    if newline == b"\n" and content.endswith(b"\r"):
        # With bare-LF framing that CR is read as the delimiter's: neither content nor size.
        content, size = content[:-1], size - 1
    for chunk in (1, 2, 3, 5, 8, 13, len(body)):
        parts = read_chunks("b", split_every(body, chunk), Limits(max_part_size=size))
        assert parts[1].content == content
        with pytest.raises(LimitExceeded) as info:
            read_chunks("b", split_every(body, chunk), Limits(max_part_size=size - 1))
        check_limit(info.value, "max_part_size", size - 1, 2)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
@pytest.mark.parametrize("padding", [b" ", b" \t \t"])
def test_transport_padding_counts_toward_the_part_before_it(newline: bytes, padding: bytes) -> None:
    # Blanks between a boundary and its line end are held until the line ends (they may yet
    # be content), so they count toward the part: the limit then bounds what is held.
    body, size = part_with_size("b", newline, b"content")
    body = body.replace(newline + b"--b--", newline + b"--b" + padding + newline * 2 + b"--b--")
    size += len(padding)
    for chunk in (1, 2, 3, 5, len(body)):
        parts = read_chunks("b", split_every(body, chunk), Limits(max_part_size=size))
        assert [part.content for part in parts] == [b"small", b"content", b""]
        with pytest.raises(LimitExceeded) as info:
            read_chunks("b", split_every(body, chunk), Limits(max_part_size=size - 1))
        check_limit(info.value, "max_part_size", size - 1, 2)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_max_header_size_exactly_and_one_more(newline: bytes) -> None:
    # The header block counts its lines with their line ends and the blank line that ends it.
    headers = b"X-A: 1" + newline + b"X-Bb: 22" + newline + b" folded" + newline + newline
    body = b"--b" + newline + newline + newline + b"--b" + newline + headers + b"content"
    body += newline + b"--b--"
    for chunk in (1, 2, 3, 7, len(body)):
        limits = Limits(max_header_size=len(headers))
        parts = read_chunks("b", split_every(body, chunk), limits)
        assert parts[1] == Part((("X-A", "1"), ("X-Bb", "22 folded")), b"content")
        with pytest.raises(LimitExceeded) as info:
            read_chunks("b", split_every(body, chunk), Limits(max_header_size=len(headers) - 1))
        check_limit(info.value, "max_header_size", len(headers) - 1, 2)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_max_headers_exactly_and_one_more(newline: bytes) -> None:
    # A folded field counts once; the count is per part.
    headers = b"".join(b"X-%d: %d" % (index, index) + newline for index in range(5))
    headers += b" folded" + newline + newline
    body = (b"--b" + newline + headers + b"c" + newline) * 2 + b"--b--"
    for chunk in (1, 3, len(body)):
        parts = read_chunks("b", split_every(body, chunk), Limits(max_headers=5))
        assert [len(part.headers) for part in parts] == [5, 5]
        assert parts[1].headers[4] == ("X-4", "4 folded")
        with pytest.raises(LimitExceeded) as info:
            read_chunks("b", split_every(body, chunk), Limits(max_headers=4))
        check_limit(info.value, "max_headers", 4, 1)


def test_max_header_size_is_per_part() -> None:
    headers = b"X-A: 1\r\n\r\n"
    body = (b"--b\r\n" + headers + b"c\r\n") * 3 + b"--b--"
    assert len(read_all("b", body, Limits(max_header_size=len(headers)))) == 3


def test_limits_refuse_non_positive_values() -> None:
    with pytest.raises(ValueError, match="max_parts"):
        Limits(max_parts=0)
    with pytest.raises(ValueError, match="max_body_size"):
        Limits(max_body_size=True)


def feed_all(reader: MultipartReader, chunks: Iterable[bytes], buffered: list[int]) -> None:
    """Feed ``chunks``, recording the buffer size after each accepted one."""
    for chunk in chunks:
        reader.feed(chunk)
        buffered.append(len(reader._buffer))


def feed_until_refused(reader: MultipartReader, chunks: list[bytes]) -> tuple[int, int]:
    """Feed until the reader refuses: (bytes accepted, largest buffer seen)."""
    buffered: list[int] = []
    with pytest.raises(LimitExceeded) as info:
        feed_all(reader, chunks, buffered)
    assert info.value.status == 413
    assert len(buffered) < len(chunks)
    return sum(len(chunk) for chunk in chunks[: len(buffered)]), max(buffered, default=0)


CHUNK = 64 * KIB
FIFTY_MB = [b"x" * CHUNK] * (50 * MIB // CHUNK)


def test_memory_stays_bounded_for_a_huge_part() -> None:
    reader = MultipartReader("b", Limits(max_part_size=MIB, max_body_size=64 * MIB))
    assert reader.feed(b"--b\r\nContent-Type: application/http\r\n\r\n") == []
    accepted, peak = feed_until_refused(reader, FIFTY_MB)
    assert accepted <= MIB + CHUNK
    assert peak < 2 * MIB


def test_memory_stays_bounded_for_a_huge_part_of_lines() -> None:
    # Many line ends and near-delimiters in the content do not stop the size check.
    reader = MultipartReader("b", Limits(max_part_size=MIB, max_body_size=64 * MIB))
    reader.feed(b"--b\r\n\r\n")
    lines = (b"\r\n--bx" * (CHUNK // 6))[:CHUNK]
    accepted, peak = feed_until_refused(reader, [lines] * (50 * MIB // CHUNK))
    assert accepted <= MIB + CHUNK
    assert peak < 2 * MIB


def test_memory_stays_bounded_for_huge_headers() -> None:
    reader = MultipartReader("b", Limits(max_header_size=16 * KIB, max_body_size=64 * MIB))
    reader.feed(b"--b\r\nX-Endless: ")
    accepted, peak = feed_until_refused(reader, FIFTY_MB)
    assert accepted <= CHUNK
    assert peak < 2 * MIB


def test_endless_transport_padding_is_refused_at_the_part_size_limit() -> None:
    # Blanks after a boundary, never ending their line: refused once the part is too large,
    # not kept (and walked again) until the body ends.
    reader = MultipartReader("b", Limits(max_part_size=64 * KIB, max_body_size=64 * MIB))
    assert reader.feed(b"--b\r\n\r\ncontent\r\n--b") == []
    accepted, peak = feed_until_refused(reader, [b" " * (16 * KIB)] * 64)
    assert accepted <= 64 * KIB + 16 * KIB
    assert peak < 96 * KIB


@pytest.mark.parametrize("blanks", [b" ", b"\t \t"])
@pytest.mark.parametrize(
    "end", [b"\r\n\r\nx\r\n--boundary--", b"\rx\n--boundary\n\nx\n--boundary--"]
)
def test_memory_stays_bounded_in_blanks_after_a_boundary_in_the_preamble(
    blanks: bytes, end: bytes
) -> None:
    # Whether the blanks end up as a delimiter's padding or as preamble, they are dropped.
    reader = MultipartReader("boundary", Limits(max_body_size=128 * MIB))
    assert reader.feed(b"preamble\r\n--boundary") == []
    chunk = blanks * (CHUNK // len(blanks))
    for _ in range(16):
        assert reader.feed(chunk) == []
        assert len(reader._buffer) < 64
    assert reader.feed(end) + reader.close() == [Part((), b"x")]


def test_memory_stays_bounded_in_a_huge_preamble_and_epilogue() -> None:
    reader = MultipartReader("boundary", Limits(max_body_size=128 * MIB))
    for chunk in FIFTY_MB:
        assert reader.feed(chunk) == []
        assert len(reader._buffer) < 64
    assert reader.feed(b"\r\n--boundary\r\n\r\nx\r\n--boundary--\r\n") == [Part((), b"x")]
    for chunk in FIFTY_MB:
        assert reader.feed(chunk) == []
        assert len(reader._buffer) == 0
    assert reader.close() == []


# --------------------------------------------------------------------------------------------
# Malformed bodies


def refusal(boundary: str, body: bytes) -> MalformedBatch:
    with pytest.raises(MalformedBatch) as info:
        read_all(boundary, body)
    assert info.value.status == 400
    assert info.value.problem()["status"] == 400
    return info.value


def test_empty_body() -> None:
    reader = MultipartReader("b", Limits())
    assert reader.feed(b"") == []
    with pytest.raises(MalformedBatch, match="empty") as info:
        reader.close()
    assert info.value.part is None


@pytest.mark.parametrize(
    "body", [b"no delimiter at all\r\n", b"--c\r\n\r\nx\r\n--c--\r\n", b"--b", b" --b\r\n"]
)
def test_boundary_never_occurs(body: bytes) -> None:
    error = refusal("b", body)
    assert "never occurs" in str(error)
    assert "'--b'" in str(error)
    assert error.part is None


@pytest.mark.parametrize(
    ("body", "part"),
    [
        (b"--b\r\nA: 1\r\n\r\ncontent", 1),
        (b"--b\r\nA: 1\r\n\r\ncontent\r\n", 1),
        (b"--b\r\nA: 1\r\n\r\ncontent\r\n--b", 1),
        (b"--b\r\nA: 1\r\n\r\ncontent\r\n--b-", 1),
        (b"--b\r\n\r\none\r\n--b\r\nA: 1\r\n", 2),
        (b"--b\r\n\r\none\r\n--b\r\nA: 1", 2),
        (b"--b\r\n", 1),
        (b"--b\r\n\r\none\r\n--b\r\n", 2),
    ],
)
def test_truncated_inside_a_part(body: bytes, part: int) -> None:
    error = refusal("b", body)
    assert "close delimiter '--b--'" in str(error)
    assert error.part == part
    assert error.problem()["part"] == part


@pytest.mark.parametrize("body", [b"--b--", b"--b--\r\n", b"preamble\r\n--b--\r\nepilogue"])
def test_only_a_close_delimiter(body: bytes) -> None:
    assert "no parts" in str(refusal("b", body))


def test_part_without_blank_line_after_headers() -> None:
    error = refusal("b", b"--b\r\n\r\nok\r\n--b\r\nContent-Type: a/b\r\n--b\r\n\r\n\r\n--b--")
    assert "blank line" in str(error)
    assert error.part == 2


@pytest.mark.parametrize(
    "line",
    [b"no colon here", b"X@Y: 1", b": no name", b"X Y: 1", b"\xe9: 1", b"GET / HTTP/1.1"],
)
def test_invalid_header_line(line: bytes) -> None:
    error = refusal("b", b"--b\r\n\r\nok\r\n--b\r\nA: 1\r\n" + line + b"\r\n\r\nx\r\n--b--")
    assert "invalid part header line" in str(error)
    assert error.part == 2


def test_bare_cr_never_splits_a_part_header_field() -> None:
    # RFC 5322 section 2.2: a field ends with CRLF only; a bare CR is no line end. Either the
    # part is refused or the CR stays inside the one field: never two fields.
    body = b"--b\r\nContent-Type: text/plain\rContent-ID: <x>\r\n\r\nbody\r\n--b--"
    result = outcome("b", [body])
    if isinstance(result, list):
        assert [name for name, _ in result[0].headers] == ["Content-Type"], result
    else:
        assert result[0] == "MalformedBatch"
        assert result[2] == 1


def test_headers_beginning_with_a_continuation_line() -> None:
    error = refusal("b", b"--b\r\n folded\r\n\r\nx\r\n--b--")
    assert "continuation" in str(error)
    assert error.part == 1


# --------------------------------------------------------------------------------------------
# boundary_of


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "multipart/related; boundary=xyz",
        "application/http",
    ],
)
def test_boundary_of_refuses_other_media_types_with_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        boundary_of(content_type)
    assert info.value.status == 415
    assert info.value.problem()["status"] == 415
    assert "multipart/mixed" in str(info.value)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/mixed",
        "multipart/mixed;",
        "multipart/mixed; charset=utf-8",
        'multipart/mixed; boundary=""',
        "multipart/mixed; boundary=",
        "multipart/mixed; boundary=" + "x" * 71,
        'multipart/mixed; boundary="' + "x" * 71 + '"',
        'multipart/mixed; boundary="trailing space "',
        "multipart/mixed; boundary=a@b",
        'multipart/mixed; boundary="a;b"',
        'multipart/mixed; boundary="a\\"b"',
        "multipart/mixed; boundary=a[b]",
        'multipart/mixed; boundary="tab\there"',
        "multipart/mixed; boundary=caf\xe9",
        "multipart/mixed; boundary=two words",
    ],
)
def test_boundary_of_refuses_bad_boundaries_with_400(content_type: str) -> None:
    with pytest.raises(MalformedBatch) as info:
        boundary_of(content_type)
    assert info.value.status == 400
    assert not isinstance(info.value, UnsupportedMediaType)


def test_boundary_of_70_characters_is_accepted() -> None:
    boundary = ("0123456789'()+_,-./:=? " * 4)[:69] + "z"
    assert len(boundary) == 70
    assert boundary_of(f'multipart/mixed; boundary="{boundary}"') == boundary
    assert boundary_of("multipart/mixed; boundary=" + "x" * 70) == "x" * 70


def test_boundary_of_accepts_an_empty_trailing_parameter() -> None:
    # RFC 9110 section 5.6.6: parameters = *( OWS ";" OWS [ parameter ] ), so a trailing
    # ";" is valid, and "be liberal in what you accept" (docs/design.md section 2).
    assert boundary_of("multipart/mixed; boundary=abc;") == "abc"
    assert boundary_of('multipart/mixed; boundary="abc"; ') == "abc"


def test_new_boundary_is_a_token_and_unique() -> None:
    boundaries = {new_boundary() for _ in range(100)}
    assert len(boundaries) == 100
    for boundary in boundaries:
        assert boundary_of(f"multipart/mixed; boundary={boundary}") == boundary


# --------------------------------------------------------------------------------------------
# The writer


def test_encode_part_and_close_exact_bytes() -> None:
    assert encode_part("b", (("A", "1"), ("B", "two words")), b"x\ny") == (
        b"--b\r\nA: 1\r\nB: two words\r\n\r\nx\ny\r\n"
    )
    assert encode_part("b", (), b"") == b"--b\r\n\r\n\r\n"
    assert encode_close("b") == b"--b--\r\n"


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\x00b", "\r\n", "end\n"])
def test_encode_field_refuses_cr_lf_nul(value: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_field("X-A", value)


@pytest.mark.parametrize("name", ["", "X A", "X:A", "X\r\nY", "caf\xe9", "\u20ac"])
def test_encode_field_refuses_invalid_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid header name"):
        encode_field(name, "v")


def test_encode_field_values() -> None:
    assert encode_field("X-A", "caf\xe9\ttab") == b"X-A: caf\xe9\ttab"
    with pytest.raises(ValueError, match="Latin-1"):
        encode_field("X-A", "\u20ac")


# --------------------------------------------------------------------------------------------
# Properties


def email_parts(boundary: str, body: bytes) -> list[email.message.Message]:
    message = email.message_from_bytes(
        b'Content-Type: multipart/mixed; boundary="' + boundary.encode() + b'"\r\n\r\n' + body,
        policy=email.policy.HTTP,
    )
    assert message.is_multipart()
    assert not message.defects, message.defects
    payload = message.get_payload()
    assert isinstance(payload, list)
    return [part for part in payload if isinstance(part, email.message.Message)]


TOKEN = st.text(alphabet="!#$%&'*+-.^_`|~0123456789ABCXYZabcxyz", min_size=1, max_size=12)
# Header values without CR, LF or NUL: the reader drops spaces and tabs around the value.
LATIN_1_VALUE = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\r\n"),
    max_size=30,
).map(lambda value: value.strip(" \t"))
ASCII_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30
).map(lambda value: value.strip(" \t"))
ROUND_TRIP_BOUNDARY = "=_round trip (boundary):" + "x" * 20


@PROPERTY
@given(
    parts=st.lists(
        st.tuples(st.lists(st.tuples(TOKEN, LATIN_1_VALUE), max_size=4), st.binary(max_size=200)),
        min_size=1,
        max_size=5,
    ),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_round_trip_any_headers_and_binary_contents(
    parts: list[tuple[list[tuple[str, str]], bytes]], cuts: list[int]
) -> None:
    dash = b"--" + ROUND_TRIP_BOUNDARY.encode()
    assume(not any(dash in content for _, content in parts))
    body = b"".join(encode_part(ROUND_TRIP_BOUNDARY, tuple(h), c) for h, c in parts)
    body += encode_close(ROUND_TRIP_BOUNDARY)
    expected = [Part(tuple(headers), content) for headers, content in parts]
    assert read_all(ROUND_TRIP_BOUNDARY, body) == expected
    assert read_chunks(ROUND_TRIP_BOUNDARY, split_at(body, cuts)) == expected


@PROPERTY
@given(
    parts=st.lists(
        st.tuples(
            st.lists(st.tuples(TOKEN.map(lambda name: "X-" + name), ASCII_VALUE), max_size=4),
            st.binary(max_size=200),
        ),
        min_size=1,
        max_size=5,
    ),
    preamble=st.sampled_from([b"", b"This is a preamble.\r\n", b"\r\n"]),
)
def test_email_package_agrees_on_well_formed_crlf_bodies(
    parts: list[tuple[list[tuple[str, str]], bytes]], preamble: bytes
) -> None:
    """The stdlib ``email`` parser as an oracle.

    Payloads are compared with ``get_payload(decode=True)``: the parts have no
    Content-Transfer-Encoding, so that returns the raw payload bytes (``message_from_bytes``
    decodes the body as ASCII with surrogateescape and ``get_payload(decode=True)`` encodes it
    back the same way), byte for byte, including CR, LF and bytes over 0x7F, and without the
    line end that RFC 2046 attaches to the next delimiter. ``decode=False`` would give a str
    with non-ASCII bytes replaced, so it is not used. Headers are compared through
    ``raw_items()``, the values as written (``str()`` of a header would decode RFC 2047
    words and parse structured headers); names are prefixed with ``X-`` so no random header
    changes how ``email`` reads the part (Content-Type, Content-Transfer-Encoding).
    """
    boundary = "oracle-boundary"
    assume(not any(b"--" + boundary.encode() in content for _, content in parts))
    body = preamble + b"".join(encode_part(boundary, tuple(h), c) for h, c in parts)
    body += encode_close(boundary)
    ours = read_all(boundary, body)
    oracle = email_parts(boundary, body)
    assert len(ours) == len(oracle) == len(parts)
    for part, expected, (headers, content) in zip(ours, oracle, parts, strict=True):
        assert list(part.headers) == list(expected.raw_items()) == headers
        assert part.content == expected.get_payload(decode=True) == content


FRAGMENTS = st.sampled_from(
    [
        b"--b",
        b"--b--",
        b"\r\n",
        b"\n",
        b"\r",
        b"-",
        b" ",
        b"\t",
        b"A: 1",
        b"X:",
        b"Content-Type: application/http",
        b"\x00",
        b"\xff",
    ]
)
FUZZ_BODY = st.lists(st.one_of(FRAGMENTS, st.binary(max_size=6)), max_size=40).map(b"".join)


@PROPERTY
@given(body=st.one_of(st.binary(max_size=300), FUZZ_BODY))
def test_any_bytes_parse_or_raise_batch_error(body: bytes) -> None:
    # outcome() catches BatchError only: any other exception fails the test.
    for limits in (Limits(), Limits(max_parts=2, max_part_size=20, max_header_size=10)):
        result = outcome("b", [body], limits)
        if isinstance(result, tuple):
            assert result[0] in {"MalformedBatch", "LimitExceeded"}
        else:
            assert all(isinstance(part, Part) for part in result)


@PROPERTY
@given(body=FUZZ_BODY, cuts=st.lists(st.integers(min_value=0), min_size=1, max_size=10))
def test_chunking_never_changes_the_outcome(body: bytes, cuts: list[int]) -> None:
    assert outcome("b", split_at(body, cuts)) == outcome("b", [body])


@PROPERTY
@given(
    parts=st.lists(
        st.tuples(
            st.lists(st.tuples(TOKEN, ASCII_VALUE), max_size=3),
            st.binary(max_size=60),
        ),
        min_size=1,
        max_size=4,
    ),
    newline=st.sampled_from([b"\r\n", b"\n"]),
    limits=st.builds(
        Limits,
        max_parts=st.integers(1, 5),
        max_part_size=st.integers(1, 120),
        max_header_size=st.integers(1, 60),
    ),
    cuts=st.lists(st.integers(min_value=0), min_size=1, max_size=10),
)
def test_chunking_never_changes_which_limit_is_hit(
    parts: list[tuple[list[tuple[str, str]], bytes]],
    newline: bytes,
    limits: Limits,
    cuts: list[int],
) -> None:
    # max_body_size stays at its default: a body-size refusal may rightly come before or after
    # another one depending on the chunks, as it is checked when bytes arrive.
    boundary = "limit-boundary"
    assume(not any(b"--" + boundary.encode() in content for _, content in parts))
    body = b"".join(encode_part(boundary, tuple(h), c) for h, c in parts)
    body = (body + encode_close(boundary)).replace(b"\r\n", newline)
    assert outcome(boundary, split_at(body, cuts), limits) == outcome(boundary, [body], limits)
