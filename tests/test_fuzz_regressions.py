"""What the coverage-guided fuzzer (``fuzz/``) found, pinned as the behaviour the wire core owes.

Why: each input below broke an invariant of the wire core under atheris (``make fuzz``): a
refusal must be a 4xx ``BatchError``, fast, whatever the input; the result must not depend on
how the body is chunked; what the library writes it must read back. ``fuzz/README.md`` tells
each finding. The corpus files are replayed through the same checks the fuzzer runs
(``fuzz/targets.py``, pure Python), in a child process so that a hang fails instead of
blocking the suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from flask_batch.wire.batch import ResponseWriter, read_requests, read_responses
from flask_batch.wire.coding import BodyDecoder
from flask_batch.wire.errors import BatchError, LimitExceeded, MalformedBatch
from flask_batch.wire.http1 import parse_response
from flask_batch.wire.model import Limits, SubRequest, SubResponse
from flask_batch.wire.multipart import boundary_of
from fuzz.targets import check

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
MIXED = "multipart/mixed; boundary=b"
# Seconds a child process has for what takes milliseconds: only a hang runs out of it.
HANG = 10


def _run(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter at the repository root; a hang fails the test."""
    try:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {HANG} s (a hang):\n{code}")


# --------------------------------------------------------------------------------------------
# The fuzzer's own inputs


@pytest.mark.parametrize(
    "path", sorted((CORPUS / "regressions").iterdir()), ids=lambda path: path.name
)
def test_regression_input_passes_the_fuzz_checks(path: Path) -> None:
    result = _run(f"from fuzz.targets import check; check({path.read_bytes()!r})")
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("path", sorted((CORPUS / "seeds").iterdir()), ids=lambda path: path.name)
def test_seed_passes_the_fuzz_checks(path: Path) -> None:
    check(path.read_bytes())


# --------------------------------------------------------------------------------------------
# Header blocks: exponential backtracking (header-backtracking)

# 64 well-formed fields, then one bad line: the block patterns, tried first, fail on the last
# line after trying 2**64 ways to split "name: value" into white space and value.
FIELDS = b"a: b\r\n" * 64 + b"\x01\r\n"
BACKTRACKING = {
    "part headers": (
        "read_requests('multipart/mixed; boundary=b', "
        f"[b'--b\\r\\n' + {FIELDS!r} + b'\\r\\nGET /\\r\\n--b--\\r\\n'], Limits())"
    ),
    "request headers": f"parse_request(b'GET / HTTP/1.1\\r\\n' + {FIELDS!r} + b'\\r\\n', Limits())",
    "response headers": f"parse_response(b'HTTP/1.1 200 OK\\r\\n' + {FIELDS!r} + b'\\r\\n')",
}


@pytest.mark.parametrize("call", BACKTRACKING.values(), ids=BACKTRACKING.keys())
def test_a_bad_line_after_many_fields_is_refused_at_once(call: str) -> None:
    result = _run(
        "from flask_batch.wire.batch import read_requests\n"
        "from flask_batch.wire.errors import MalformedBatch\n"
        "from flask_batch.wire.http1 import parse_request, parse_response\n"
        "from flask_batch.wire.model import Limits\n"
        "try:\n"
        f"    {call}\n"
        "except MalformedBatch as error:\n"
        "    print(error)\n"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "invalid" in result.stdout
    assert "b'\\x01'" in result.stdout


# --------------------------------------------------------------------------------------------
# RequestReader: which part is refused depends on chunking (part-order)


def _outcome(chunks: list[bytes], limits: Limits) -> tuple[type[BatchError], int | None, str]:
    with pytest.raises(BatchError) as caught:
        read_requests(MIXED, chunks, limits)
    return type(caught.value), caught.value.part, str(caught.value)


PART_ORDER = {
    # Part 1 holds no valid request; part 2's MIME headers are malformed.
    "bad part header after": (b"--b\r\n\r\nBAD\r\n--b\r\nX\r\n\r\n\r\n--b--\r\n", Limits()),
    # Part 1 holds no valid request; part 3 is one part too many.
    "too many parts after": (
        b"--b\r\n\r\nBAD\r\n--b\r\n\r\n\r\n--b\r\n\r\n\r\n--b--\r\n",
        Limits(max_parts=2),
    ),
}


@pytest.mark.parametrize(("body", "limits"), PART_ORDER.values(), ids=PART_ORDER.keys())
def test_the_first_bad_part_is_refused_however_the_body_is_chunked(
    body: bytes, limits: Limits
) -> None:
    second = body.index(b"--b", 1) + len(b"--b\r\n")  # cut just after part 2's delimiter
    whole = _outcome([body], limits)
    chunked = _outcome([body[:second], body[second:]], limits)
    assert chunked == (MalformedBatch, 1, "part 1: invalid HTTP request line b'BAD'")
    assert whole == chunked


# --------------------------------------------------------------------------------------------
# BodyDecoder: raw deflate depends on the first chunk (deflate-start)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


def _decoded(chunks: list[bytes], limit: int = 1000, coding: str = "deflate") -> bytes:
    decoder = BodyDecoder(coding, limit)
    output = b"".join([decoder.feed(chunk) for chunk in chunks])
    decoder.close()
    return output


RAW = _raw_deflate(b"hello, batch")
DEFLATE_CHUNKS = {
    "empty first chunk": [b"", RAW],
    "1-byte first chunk": [RAW[:1], RAW[1:]],
    "byte by byte": [RAW[i : i + 1] for i in range(len(RAW))],
}


@pytest.mark.parametrize("chunks", DEFLATE_CHUNKS.values(), ids=DEFLATE_CHUNKS.keys())
def test_raw_deflate_decodes_however_it_is_chunked(chunks: list[bytes]) -> None:
    assert _decoded([RAW]) == b"hello, batch"
    assert _decoded(chunks) == b"hello, batch"


def test_raw_deflate_over_the_limit_is_refused_for_its_size_however_it_is_chunked() -> None:
    raw = _raw_deflate(b"x" * 100)
    for chunks in ([raw], [b"", raw], [raw[:1], raw[1:]]):
        with pytest.raises(LimitExceeded):
            _decoded(chunks, limit=10)


# --------------------------------------------------------------------------------------------
# ResponseWriter: a boundary that is not a token, unquoted (unquoted-boundary)


@pytest.mark.parametrize("boundary", ["a b", "a/b", "a?b=c", "(a):b"])
def test_the_answer_content_type_carries_any_valid_boundary(boundary: str) -> None:
    writer = ResponseWriter(boundary)
    assert boundary_of(writer.content_type) == boundary
    # RFC 2045 section 5.1: a parameter value is a token, or else a quoted string.
    _, _, value = writer.content_type.partition("boundary=")
    assert re.fullmatch(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+|\"[^\"\\]*\"", value)
    request = SubRequest("GET", "/", (), b"", "<1>")
    body = writer.part(SubResponse(200, "OK", (), b"hi"), request) + writer.close()
    assert read_responses(writer.content_type, body) == [
        ("<1>", SubResponse(200, "OK", (("Content-Length", "2"),), b"hi"))
    ]


# --------------------------------------------------------------------------------------------
# BodyDecoder: too large or corrupt, depending on chunking (decoder-error-order)

# gzip: a block of 2 literals, then a stored block whose lengths do not match.
OVER_THEN_CORRUPT = bytes.fromhex("1f8b0800000000000003cac8040000 00ffff 0005000000")


@pytest.mark.parametrize("cut", [None, len(OVER_THEN_CORRUPT) - 5], ids=["whole", "chunked"])
def test_output_over_the_limit_before_a_corrupt_block_is_refused_for_its_size(
    cut: int | None,
) -> None:
    data = OVER_THEN_CORRUPT
    chunks = [data] if cut is None else [data[:cut], data[cut:]]
    with pytest.raises(LimitExceeded):
        _decoded(chunks, 1, "gzip")


# --------------------------------------------------------------------------------------------
# parse_response: a Content-Length of Unicode digits (unicode-digit-length)


@pytest.mark.parametrize("digit", [b"\xb2", b"\xb3", b"\xb9", b"1\xb2"])
def test_a_content_length_of_latin1_digits_is_no_length(digit: bytes) -> None:
    message = b"HTTP/1.1 200 OK\r\nContent-Length: " + digit + b"\r\n\r\nok"
    assert parse_response(message).body == b"ok"  # like any other invalid Content-Length
    body = b"--b\r\nContent-Type: application/http\r\n\r\n" + message + b"\r\n--b--\r\n"
    assert read_responses(MIXED, body)[0][1].body == b"ok"
