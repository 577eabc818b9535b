"""The multipart reader's work grows linearly with the body, whatever its shape and chunking.

Why: a reader that re-examines what it already read costs quadratic CPU on a hostile body. A
security review found one: ``--boundary`` followed by megabytes of blanks made the reader
walk the blanks again on every chunk (16 MiB cost about two minutes of CPU per request). Wall
time cannot show such a bug reliably on a shared machine, so the reader counts its work
(``scanned``: the bytes its searches looked at and its walks stepped over) and each shape
below is read at sizes four times apart, in whole, 1-byte, 7-byte and 4 KiB chunks: the work
per byte must stay under a small constant that does not grow with the size. (The meter counts
the multipart framing; a part's HTTP message is then parsed once, by ``parse_request``, in
single passes it does not count. Work it cannot see, C-level copies, is guarded against hangs
at the end.)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from flask_batch.wire.errors import BatchError
from flask_batch.wire.fields import parse_fields
from flask_batch.wire.media_type import boundary_of
from flask_batch.wire.model import KIB, MIB, Limits
from flask_batch.wire.multipart_requests import RequestReader

from .child import run_in_child

BOUNDARY = "boundary"
CONTENT_TYPE = f"multipart/mixed; boundary={BOUNDARY}"
DASH = b"--" + BOUNDARY.encode()
DELIMITER = b"\n" + DASH  # what the reader searches for
CLOSE = DASH + b"--\r\n"
MIME = b"Content-Type: application/http\r\n\r\n"
GET = b"GET /x HTTP/1.1\r\n\r\n"
POST = b"POST /x HTTP/1.1\r\n\r\n"
#: Large enough for every shape at every size: what is measured is work, not a refusal.
ROOMY = Limits(
    max_parts=1_000_000,
    max_group_size=1_000_000,
    max_body_size=64 * MIB,
    max_part_size=64 * MIB,
    max_header_size=64 * MIB,
)


def part(message: bytes, mime: bytes = MIME) -> bytes:
    return DASH + b"\r\n" + mime + message + b"\r\n"


TINY_PART = DASH + b"\r\n\r\nGET /\r\n"
#: A part too large to be copied out of the reader's buffer (multipart._HAND_OVER_FROM).
LARGE_PART = part(POST + b"x" * 64 * KIB)


#: A changeset's members are framed by their own boundary, "cs".
TINY_MEMBER = b"--cs\r\n\r\nPUT /\r\n"
LARGE_MEMBER = b"--cs\r\n" + MIME + POST + b"x" * 64 * KIB + b"\r\n"


def member(message: bytes) -> bytes:
    return b"--cs\r\n" + MIME + message + b"\r\n"


def changeset(members: bytes) -> bytes:
    """A changeset part holding ``members`` (each framed by its delimiter)."""
    return (
        DASH + b"\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n" + members + b"--cs--\r\n"
    )


def repeat(unit: bytes, size: int) -> bytes:
    """``unit`` repeated to about ``size`` bytes."""
    return unit * max(1, size // len(unit))


#: name -> a hostile body of about the given size, and what reading it ends in: the number of
#: requests, or the refusal's class name (at every size and chunking).
SHAPES: dict[str, Callable[[int], tuple[bytes, int | str]]] = {
    # Blanks after a boundary in the preamble: a delimiter's transport padding, or not.
    "preamble-blanks-then-delimiter": lambda size: (
        DASH + repeat(b" \t", size) + b"\r\n" + MIME + GET + b"\r\n" + CLOSE,
        1,
    ),
    "preamble-blanks-then-content": lambda size: (
        b"x\n" + DASH + repeat(b" ", size) + b"\rx\r\n" + part(GET) + CLOSE,
        1,
    ),
    "preamble-near-delimiters": lambda size: (
        repeat(b"\n--boundaryX", size) + b"\r\n" + part(GET) + CLOSE,
        1,
    ),
    "preamble-without-delimiter": lambda size: (
        repeat(b"preamble\r\n", size) + part(GET) + CLOSE,
        1,
    ),
    # The same inside a part: the blanks end the part, or are its content.
    "part-blanks-then-delimiter": lambda size: (
        part(POST + b"body") + DASH + repeat(b"\t ", size) + b"\r\n" + MIME + GET + b"\r\n" + CLOSE,
        2,
    ),
    "part-blanks-then-content": lambda size: (
        part(POST + b"body\r\n" + DASH + repeat(b" ", size) + b"x") + part(GET) + CLOSE,
        2,
    ),
    "part-near-delimiters-cut-short": lambda size: (
        part(POST + repeat(b"\r\n--boundar", size)) + CLOSE,
        1,
    ),
    "part-near-delimiters-with-a-byte-more": lambda size: (
        part(POST + repeat(b"\n--boundaryX", size)) + CLOSE,
        1,
    ),
    "part-near-delimiters-with-blanks-then-content": lambda size: (
        part(POST + repeat(b"\n--boundary \t-", size)) + CLOSE,
        1,
    ),
    "part-line-ends": lambda size: (part(POST + repeat(b"\r\n", size)) + CLOSE, 1),
    # Long header lines: in a part's MIME headers and in its HTTP message's head.
    "part-header-line": lambda size: (
        part(GET, b"X-Long: " + repeat(b"a", size) + b"\r\n" + MIME) + CLOSE,
        1,
    ),
    "http-header-line": lambda size: (
        part(b"GET /x HTTP/1.1\r\nX-Long: " + repeat(b"a", size) + b"\r\n\r\n") + CLOSE,
        1,
    ),
    "part-that-never-ends": lambda size: (
        DASH + b"\r\n" + MIME + POST + repeat(b"x", size),
        "MalformedBatch",
    ),
    "many-large-parts": lambda size: (
        repeat(LARGE_PART, size) + CLOSE,
        max(1, size // len(LARGE_PART)),
    ),
    "many-tiny-parts": lambda size: (
        repeat(TINY_PART, size) + CLOSE,
        max(1, size // len(TINY_PART)),
    ),
    # Changesets: read as a part of the body, then apart as their members.
    "changeset-of-many-tiny-members": lambda size: (
        changeset(repeat(TINY_MEMBER, size)) + CLOSE,
        max(1, size // len(TINY_MEMBER)),
    ),
    "changeset-of-large-members": lambda size: (
        changeset(repeat(LARGE_MEMBER, size)) + CLOSE,
        max(1, size // len(LARGE_MEMBER)),
    ),
    "changeset-near-delimiters": lambda size: (
        changeset(member(POST + repeat(b"\n--csX", size))) + CLOSE,
        1,
    ),
    "changeset-blanks-then-content": lambda size: (
        changeset(member(POST + b"body\r\n--cs" + repeat(b" ", size) + b"x")) + CLOSE,
        1,
    ),
    "many-tiny-changesets": lambda size: (
        repeat(changeset(TINY_MEMBER), size) + CLOSE,
        max(1, size // len(changeset(TINY_MEMBER))),
    ),
}


#: Chunk size (None: the whole body at once) -> the body sizes it is read at, 4x apart. Small
#: chunks cost a Python call each, so they are read at smaller sizes: what grows is the same.
CHUNKINGS: dict[int | None, tuple[int, ...]] = {
    None: (64 * KIB, 256 * KIB, MIB),
    4 * KIB: (64 * KIB, 256 * KIB, MIB),
    7: (4 * KIB, 16 * KIB, 64 * KIB),
    1: (1 * KIB, 4 * KIB, 16 * KIB),
}
#: Large parts are large at every size: in small chunks their bodies would not grow.
CASES = [
    (name, chunk)
    for name in SHAPES
    for chunk in CHUNKINGS
    if not (name.endswith("large-parts") or name.endswith("large-members"))
    or not chunk
    or chunk >= KIB
]
#: Work per byte of body allowed: a few passes over each byte (finding a part's headers and
#: parsing them, searching its content), and per chunk at most a delimiter's length looked at
#: again (the bytes at the chunk's end that could begin a delimiter).
PASSES = 3
FIXED = 1 * KIB
#: How much the work per byte added may grow from one size step (4x) to the next: quadratic
#: work would quadruple it.
CREEP = 1.15


def allowed_work(size: int, chunk: int | None) -> int:
    chunks = 1 if chunk is None else -(-size // chunk)
    return PASSES * size + len(DELIMITER) * chunks + FIXED


def pieces(body: bytes, chunk: int | None) -> Iterator[bytes]:
    if chunk is None:
        yield body
        return
    for start in range(0, len(body), chunk):
        yield body[start : start + chunk]


def read(body: bytes, chunk: int | None) -> tuple[int | str, int]:
    """(the number of requests read, or the refusal's class name; the work it took)."""
    reader = RequestReader(boundary_of(CONTENT_TYPE), ROOMY)
    try:
        for piece in pieces(body, chunk):
            reader.feed(piece)
        result: int | str = len(reader.close())
    except BatchError as error:
        result = type(error).__name__
    return result, reader.scanned


@pytest.mark.parametrize(
    ("name", "chunk"), CASES, ids=[f"{name}-chunk-{chunk or 'whole'}" for name, chunk in CASES]
)
def test_work_grows_linearly_with_the_body(name: str, chunk: int | None) -> None:
    measured = []  # (bytes received, work)
    for size in CHUNKINGS[chunk]:  # the smallest first: a quadratic reader fails early
        body, expected = SHAPES[name](size)
        result, work = read(body, chunk)
        assert result == expected, f"{name}: {result!r} read from {len(body)} bytes"
        assert work <= allowed_work(len(body), chunk), (
            f"{name} in chunks of {chunk}: {work} bytes examined for {len(body)} received "
            f"({work / len(body):.1f} per byte)"
        )
        measured.append((len(body), work))
    # The work each step adds, per byte it adds: flat for linear work, whatever the fixed cost.
    added = [(w2 - w1) / (n2 - n1) for (n1, w1), (n2, w2) in itertools.pairwise(measured)]
    assert added[1] <= added[0] * CREEP, f"{name}: {added[0]:.2f}, then {added[1]:.2f} per byte"


# --------------------------------------------------------------------------------------------
# Work the meter does not see: C-level copies, guarded against hangs in a child process


def test_a_long_folded_header_is_unfolded_in_one_join() -> None:
    # A client reads its server's answer without limits: a part header folded over 4 MiB of
    # continuation lines was unfolded by adding each line to the value, copying the value
    # again for every line (about 50 s for 4 MiB; 1 MiB took 3 s, 16 KiB 2 ms).
    result = run_in_child(
        "from flask_batch.wire.multipart_answers import read_responses\n"
        "folded = b' b\\r\\n' * (1024 * 1024)\n"
        "answer = b'\\r\\nHTTP/1.1 204\\r\\n\\r\\n\\r\\n--b--'\n"
        "body = b'--b\\r\\nX-Folded: a\\r\\n' + folded + answer\n"
        "((_, response),) = read_responses('multipart/mixed; boundary=b', body)\n"
        "print(response.status)\n"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "204\n"


def test_folded_header_lines_join_with_one_space_each() -> None:
    block = b"X-Folded: a\r\n b\r\n\t\tc \r\n \r\nNext: 1\r\n d\r\n"
    assert parse_fields(block, ROOMY, 1, mime=True) == (("X-Folded", "a b c "), ("Next", "1 d"))
