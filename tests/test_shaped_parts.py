"""The one-pass reading of a batch's usual parts gives exactly what the general reading gives.

Why: :class:`RequestReader` reads a part of the usual shape (the MIME headers real clients
write, a request line, an HTTP header block; ``_SHAPED_PART``) in one pattern match and one
delimiter search, about three times faster than the multipart reader's steps and
``parse_request`` (issue 14, docs/performance.md). It is a second parser, so every input
the parser's tests know is read both ways here and must give the same requests, or the same
refusal (class, problem document, limit): the real clients' captures, the fuzzer's corpus,
the hostile bodies of the linear-time suite, and each template part mutated at every byte
(deleted, doubled, replaced by a line end, a blank, NUL, a colon...), under roomy and tight
limits, whole and in chunks.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.workload import batch_body, calls, multipart_content_type
from flask_batch.wire.errors import BatchError, LimitExceeded
from flask_batch.wire.media_type import boundary_of
from flask_batch.wire.model import Limits, SubRequest
from flask_batch.wire.multipart import MultipartReader
from flask_batch.wire.multipart_requests import RequestReader
from fuzz.targets import READER, TARGETS, Cursor, reader_case, split

from . import test_linear_time
from .child import ROOT
from .properties import PROPERTY
from .wire_samples import SAMPLES_DIR, split_raw_request

CONTENT_TYPE = "multipart/mixed; boundary=b"
Outcome = tuple[SubRequest, ...] | tuple[str, object, str | None]


def outcome(content_type: str, chunks: Sequence[bytes], limits: Limits, *, shaped: bool) -> Outcome:
    """The requests read (``shaped``: with the one-pass reading), or the refusal."""
    try:
        reader = RequestReader(boundary_of(content_type), limits, one_pass=shaped)
        for chunk in chunks:
            reader.feed(chunk)
        return tuple(reader.close())
    except BatchError as error:
        limit = error.limit if isinstance(error, LimitExceeded) else None
        return (type(error).__name__, error.problem(), limit)


def assert_same(content_type: str, chunks: Sequence[bytes], limits: Limits) -> Outcome:
    shaped = outcome(content_type, chunks, limits, shaped=True)
    general = outcome(content_type, chunks, limits, shaped=False)
    assert shaped == general, (content_type, b"".join(chunks)[:400], limits)
    return shaped


def chunkings(body: bytes, cuts: Sequence[int] = ()) -> Iterator[list[bytes]]:
    """The body whole, cut at each of ``cuts``, and in 97-byte chunks."""
    yield [body]
    for cut in cuts:
        yield [body[:cut], body[cut:]]
    yield [body[at : at + 97] for at in range(0, len(body), 97)]


# --------------------------------------------------------------------------------------------
# Inputs the parser's other tests know


def sample_paths() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("*/*.request.raw"))


@pytest.mark.parametrize("path", sample_paths(), ids=lambda path: f"{path.parent.name}-{path.name}")
def test_real_clients_captures_read_alike(path: Path) -> None:
    raw = split_raw_request(path.read_bytes())
    for chunks in chunkings(raw.body, (len(raw.body) // 2,)):
        assert_same(raw.headers["content-type"], chunks, Limits())


def corpus_inputs() -> list[Path]:
    corpus = ROOT / "fuzz" / "corpus"
    return sorted(
        path
        for path in corpus.glob("*/*")
        if path.is_file() and path.read_bytes()[:1] and path.read_bytes()[0] % 5 == READER
    )


def test_the_corpus_has_reader_inputs() -> None:
    assert len(corpus_inputs()) >= 20
    assert TARGETS["reader"] == READER


@pytest.mark.parametrize("path", corpus_inputs(), ids=lambda path: path.name)
def test_fuzz_corpus_reads_alike(path: Path) -> None:
    cursor = Cursor(path.read_bytes())
    cursor.byte()  # the target
    limits, sizes, content_type, body = reader_case(cursor)
    for chunks in (*chunkings(body), split(body, sizes)):
        assert_same(content_type, chunks, limits)


@pytest.mark.parametrize("name", sorted(test_linear_time.SHAPES))
def test_hostile_bodies_read_alike(name: str) -> None:
    body, _ = test_linear_time.SHAPES[name](3000)
    for chunks in chunkings(body, (len(body) // 3,)):
        assert_same(test_linear_time.CONTENT_TYPE, chunks, test_linear_time.ROOMY)


# --------------------------------------------------------------------------------------------
# Template parts, mutated at every byte


def part(mime: bytes, message: bytes, newline: bytes = b"\r\n") -> bytes:
    return b"--b" + newline + mime + newline + message + newline


PATCH_BODY = b'{"count": 1, "note": "x"}'
TEMPLATES = {
    "patch": part(
        b"Content-Type: application/http\r\nContent-ID: <item-1>\r\n",
        b"PATCH /items/1 HTTP/1.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(PATCH_BODY), PATCH_BODY),
    ),
    "odata-get": part(
        b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        b"Content-ID: 2\r\nDepends-On: 1, a\r\n",
        b"GET /items/2?$select=id HTTP/1.1\r\nAccept: application/json\r\n\r\n",
    ),
    "bare-lf-post-to-its-end": part(
        b"Content-Type: application/http\nContent-ID: 3\n",
        b"POST /items\nX-Empty:\nAccept:  text/plain  \n\nbody\n",
        b"\n",
    ),
}
FIRST = part(b"Content-Type: application/http\r\n", b"GET /first HTTP/1.1\r\n\r\n")
LAST = part(b"Content-Type: application/http\r\n", b"DELETE /last HTTP/1.0\r\n\r\n") + b"--b--\r\n"
INSERTED = (b"\r", b"\n", b" ", b"\t", b"\x00", b":", b"-", b",", b"a", b"\xe9")
LIMIT_NAMES = ("max_part_size", "max_header_size", "max_headers")


def exact_limits(body: bytes) -> Limits:
    """The smallest limits ``body`` is read under (three parts at most): a mutation that
    grows anything trips one."""
    limits = Limits(max_parts=3)
    for name in LIMIT_NAMES:
        low, high = 1, getattr(Limits(), name)
        while low < high:  # the smallest value the body is read under
            middle = (low + high) // 2
            tried = dataclasses.replace(limits, **{name: middle})
            if isinstance(outcome(CONTENT_TYPE, [body], tried, shaped=False)[0], SubRequest):
                high = middle
            else:
                low = middle + 1
        limits = dataclasses.replace(limits, **{name: low})
    return limits


LIMITS = ("roomy", "exact", "two-parts")


#: Limits that every template part just fits (a batch of up to 7 parts).
EXACT = dataclasses.replace(
    functools.reduce(
        lambda a, b: Limits(**{n: max(getattr(a, n), getattr(b, n)) for n in LIMIT_NAMES}),
        (exact_limits(FIRST + template + LAST) for template in TEMPLATES.values()),
    ),
    max_parts=7,
)


def mutations(template: bytes) -> Iterator[bytes]:
    """``template`` itself, then with each byte deleted, doubled, replaced by, or preceded by
    each of :data:`INSERTED`."""
    yield template
    for at in range(len(template)):
        head, byte, tail = template[:at], template[at : at + 1], template[at + 1 :]
        yield head + tail
        yield head + byte + byte + tail
        for other in INSERTED:
            yield head + other + tail
            yield head + other + byte + tail


@pytest.mark.parametrize(("template", "limits"), list(itertools.product(TEMPLATES, LIMITS)))
def test_every_mutation_of_a_part_reads_alike(template: str, limits: str) -> None:
    exact = exact_limits(FIRST + TEMPLATES[template] + LAST)
    chosen = {"roomy": Limits(), "exact": exact, "two-parts": Limits(max_parts=2)}[limits]
    requests = 0
    for mutated in mutations(TEMPLATES[template]):
        body = FIRST + mutated + LAST
        for chunks in chunkings(body, (len(FIRST) + len(mutated) // 2, len(FIRST) + 1)):
            result = assert_same(CONTENT_TYPE, chunks, chosen)
            requests += isinstance(result[0], SubRequest)
    assert requests or limits == "two-parts"  # some of them were read, not all refused


@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(TEMPLATES)), st.integers(0, 200), st.binary(max_size=3)),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(LIMITS),
    st.integers(1, 400),
)
@PROPERTY
def test_batches_of_mutated_parts_read_alike(
    parts: list[tuple[str, int, bytes]], limits: str, chunk: int
) -> None:
    """Several mutated parts in a row: what one part leaves (an offset, a count, a cached
    header block) must not change how the next is read."""
    body = FIRST
    for template, place, inserted in parts:
        text = TEMPLATES[template]
        at = place % len(text)
        body += text[:at] + inserted + text[at:]
    body += LAST
    chosen = {"roomy": Limits(), "exact": EXACT, "two-parts": Limits(max_parts=2)}[limits]
    assert_same(CONTENT_TYPE, [body], chosen)
    assert_same(CONTENT_TYPE, [body[at : at + chunk] for at in range(0, len(body), chunk)], chosen)


CHANGESET = part(
    b"Content-Type: multipart/mixed; boundary=cs\r\n",
    b"".join(
        part(
            b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
            b"DELETE /items/%d HTTP/1.1\r\n\r\n" % member,
        ).replace(b"--b", b"--cs")
        for member in (1, 2)
    )
    + b"--cs--",
)


@pytest.mark.parametrize("max_parts", range(1, 10))
def test_parts_after_a_changeset_count_its_members_alike(max_parts: int) -> None:
    """Once a changeset was read, its members count toward ``max_parts``: the parts read in
    one loop after it stop where the general way refuses the batch (8 requests here)."""
    body = FIRST + CHANGESET + TEMPLATES["patch"] * 2 + TEMPLATES["odata-get"] * 2 + LAST
    limits = Limits(max_parts=max_parts)
    for chunks in chunkings(body, (len(FIRST) + len(CHANGESET) + 1,)):
        result = assert_same(CONTENT_TYPE, chunks, limits)
        assert (len(result) == 8) is (max_parts >= 8), result[:1]


# --------------------------------------------------------------------------------------------
# It is used, and keeps the reader's work meter


def test_the_benchmark_batch_is_read_in_one_pass_per_part(monkeypatch: pytest.MonkeyPatch) -> None:
    skipped = []
    skip = MultipartReader.skip_part

    def counting(reader: MultipartReader) -> None:
        skipped.append(reader)
        skip(reader)

    monkeypatch.setattr(MultipartReader, "skip_part", counting)
    body = batch_body(calls(100))
    limits = Limits()
    reader = RequestReader(boundary_of(multipart_content_type()), limits)
    reader.feed(body)
    requests = reader.close()
    # Every part in one pass: the first once the preamble is behind, the last up to the
    # close delimiter.
    assert len(requests) == 100
    assert len(skipped) == 100
    assert reader.scanned <= 3 * len(body)
    assert tuple(requests) == outcome(multipart_content_type(), [body], limits, shaped=False)


def test_a_head_that_runs_into_the_next_part_is_read_the_general_way() -> None:
    """A boundary may hold a colon (RFC 2046), so a delimiter line can look like a header
    field: a part whose HTTP head has no blank line must not take the next part's lines for
    its own. The pattern stops at the first blank line, so the look goes at most to the end
    of the next part's headers: the work stays linear."""
    content_type = "multipart/mixed; boundary=x:y"
    unit = (
        b"--x:y\r\nContent-Type: application/http\r\n\r\n"
        b"GET /x HTTP/1.1\r\nAccept: a\r\n"  # no blank line: the head runs to the part's end
    )
    body = unit * 50 + b"--x:y--\r\n"
    requests = assert_same(content_type, [body], Limits())
    assert len(requests) == 50
    assert all(isinstance(r, SubRequest) and r.headers == (("Accept", "a"),) for r in requests)
    reader = RequestReader(boundary_of(content_type), Limits())
    reader.feed(body)
    reader.close()
    assert reader.scanned <= 3 * len(body)


SHAPED = b"Content-Type: application/http\r\n"
#: Parts at the edges of the shape, each between two plain parts.
EDGES = {
    "empty-content-id": part(SHAPED + b"Content-ID:  \t\r\n", b"GET /x\r\n\r\n"),
    "content-id-with-blanks-around": part(
        SHAPED + b"Content-ID: \t<a b> \t\r\n", b"GET /x\r\n\r\n"
    ),
    "latin-1-content-id": part(SHAPED + b"Content-ID: \xe9t\xe9\r\n", b"GET /x\r\n\r\n"),
    "folded-content-id": part(SHAPED + b"Content-ID: a\r\n b\r\n", b"GET /x\r\n\r\n"),
    "blank-depends-on": part(SHAPED + b"Depends-On: , ,\r\n", b"GET /x\r\n\r\n"),
    "depends-on-list": part(SHAPED + b"Depends-On: a,b , c\t\r\n", b"GET /x\r\n\r\n"),
    "content-id-twice": part(SHAPED + b"Content-ID: a\r\nContent-ID: b\r\n", b"GET /x\r\n\r\n"),
    "lower-case-names": part(b"content-type: application/http\r\n", b"GET /x\r\n\r\n"),
    "msgtype": part(b"Content-Type: application/http; msgtype=request\r\n", b"GET /x\r\n\r\n"),
    "http-1.0": part(SHAPED, b"GET /x HTTP/1.0\r\n\r\n"),
    "http-2.0": part(SHAPED, b"GET /x HTTP/2.0\r\n\r\n"),
    "no-version": part(SHAPED, b"GET /x\r\n\r\n"),
    "chunked": part(
        SHAPED, b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    ),
    "length-twice": part(SHAPED, b"POST /x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc"),
    "lengths-differ": part(SHAPED, b"POST /x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"),
    "length-signed": part(SHAPED, b"POST /x\r\nContent-Length: +3\r\n\r\nabc"),
    "length-too-long": part(SHAPED, b"POST /x\r\nContent-Length: 9\r\n\r\nabc"),
    "length-then-line-ends": part(SHAPED, b"POST /x\r\nContent-Length: 3\r\n\r\nabc\r\n\r\n"),
    "length-then-bytes": part(SHAPED, b"POST /x\r\nContent-Length: 3\r\n\r\nabcd"),
    "no-length-blank-lines": part(SHAPED, b"POST /x\r\n\r\n\r\n\n\r\n"),
    "no-length-body": part(SHAPED, b"POST /x\r\n\r\n\r\nbody\r\n"),
    "obs-fold": part(SHAPED, b"GET /x\r\nA: b\r\n c\r\n\r\n"),
    "nul-in-value": part(SHAPED, b"GET /x\r\nA: b\x00c\r\n\r\n"),
    "bare-cr-in-value": part(SHAPED, b"GET /x\r\nA: b\rX-Injected: 1\r\n\r\n"),
    "space-before-colon": part(SHAPED, b"GET /x\r\nA : b\r\n\r\n"),
    "delimiter-in-body": part(SHAPED, b"POST /x\r\nContent-Length: 9\r\n\r\nab\r\n--b\r\ncd"),
    "large-body": part(SHAPED, b"POST /x\r\n\r\n" + b"x" * 70_000),
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_parts_at_the_edges_of_the_shape_read_alike(name: str) -> None:
    body = FIRST + EDGES[name] + EDGES[name] + LAST
    for limits in (Limits(), EXACT, Limits(max_headers=4, max_header_size=60)):
        for chunks in chunkings(body, (len(FIRST) + 40,)):
            assert_same(CONTENT_TYPE, chunks, limits)


#: What may follow a batch's last part: the close delimiter and an epilogue, padding, nothing;
#: or no close delimiter at all (refused, both ways alike).
ENDINGS = {
    "close": b"--b--",
    "close-crlf": b"--b--\r\n",
    "close-padding-epilogue": b"--b-- \t\r\nan epilogue --b\r\n",
    "half-close": b"--b-",
    "no-close": b"--b",
}


@pytest.mark.parametrize(
    ("name", "ending"), list(itertools.product(sorted(EDGES), sorted(ENDINGS)))
)
def test_a_first_and_last_part_at_the_edges_read_alike(name: str, ending: str) -> None:
    # The one-pass reading starts past the preamble and takes a last part up to the close
    # delimiter: each edge alone, and as the first and the last part of two.
    for body in (
        EDGES[name] + ENDINGS[ending],
        b"a preamble\r\n" + EDGES[name] + EDGES[name] + ENDINGS[ending],
    ):
        exact = Limits(max_body_size=len(body), max_parts=body.count(b"--b\r\n"))
        for limits in (
            Limits(),
            EXACT,
            exact,
            dataclasses.replace(exact, max_body_size=len(body) - 3),
        ):
            for chunks in chunkings(body, (12, len(body) - 3)):
                assert_same(CONTENT_TYPE, chunks, limits)
