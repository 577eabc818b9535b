"""What the coverage-guided fuzzer (``fuzz/``) found, pinned as the behaviour the wire core owes.

Why: each input below broke an invariant of the wire core under atheris (``make fuzz``): a
refusal must be a 4xx ``BatchError``, fast, whatever the input; the result must not depend on
how the body is chunked; what the library writes it must read back. ``fuzz/README.md`` tells
each finding. The corpus files are replayed through the same checks the fuzzer runs
(``fuzz/targets.py``, pure Python), in a child process so that a hang fails instead of
blocking the suite.

Findings 1 to 6 (header blocks to boundaries) were fixed in f50eb2f, 7 to 12 (the JSON
format: json-surrogate, json-infinity, json-answer-validation, json-answer-recursion,
json-nesting-window, json-writer-state) in 3f7727e, 13 (json-untyped-body) in d6009b7.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest

from flask_batch.answers import INVALID_RESPONSE
from flask_batch.wire.content_coding import BodyDecoder
from flask_batch.wire.errors import BatchError, LimitExceeded, MalformedBatch
from flask_batch.wire.http1 import parse_response
from flask_batch.wire.json_answers import JsonResponseWriter, read_json_responses
from flask_batch.wire.json_requests import JsonRequestReader, encode_json_requests
from flask_batch.wire.media_type import boundary_of
from flask_batch.wire.model import Limits, SubRequest, SubResponse
from flask_batch.wire.multipart_answers import ResponseWriter, read_responses
from flask_batch.wire.multipart_requests import read_requests
from fuzz.targets import check

from .child import ROOT, run_in_child

CORPUS = ROOT / "fuzz" / "corpus"
MIXED = "multipart/mixed; boundary=b"


# --------------------------------------------------------------------------------------------
# The fuzzer's own inputs


@pytest.mark.parametrize(
    "path", sorted((CORPUS / "regressions").iterdir()), ids=lambda path: path.name
)
def test_regression_input_passes_the_fuzz_checks(path: Path) -> None:
    result = run_in_child(f"from fuzz.targets import check; check({path.read_bytes()!r})")
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
    result = run_in_child(
        "from flask_batch.wire.multipart_requests import read_requests\n"
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


# --------------------------------------------------------------------------------------------
# The JSON format: lone surrogates (json-surrogate)

# JSON may escape any UTF-16 code unit, so "\ud800" is valid JSON for a string Python holds as
# a lone surrogate, which no UTF-8 encoder writes. The reader must refuse such a string (400)
# or every later step must carry it: the answer, its INVALID_RESPONSE fallback, the client.
SURROGATES = {
    "url": b'{"requests":[{"id":"1","method":"GET","url":"/\\ud800"}]}',
    "id": b'{"requests":[{"id":"\\ud800","method":"GET","url":"/"}]}',
    "dependsOn": b'{"requests":[{"id":"1","method":"GET","url":"/","dependsOn":["\\udfff"]}]}',
}
OK_ANSWER = SubResponse(200, "OK", (("Content-Type", "application/json"),), b'{"ok":true}')


def _strict_json(data: bytes | bytearray) -> Any:
    """Parse as a browser's JSON.parse would: UTF-8, and no NaN or Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(data.decode("utf-8"), parse_constant=refuse)


def _json_answer(pairs: list[tuple[SubResponse, SubRequest]]) -> bytes:
    """A JSON answer written as the engine writes it: INVALID_RESPONSE for a response that
    cannot be written."""
    writer = JsonResponseWriter()
    chunks = [writer.start()]
    for response, request in pairs:
        try:
            chunks.append(writer.part(response, request))
        except ValueError:
            chunks.append(writer.part(INVALID_RESPONSE, request))
    return b"".join([*chunks, writer.close()])


def _read_json(document: bytes) -> list[SubRequest] | BatchError:
    """The requests of a JSON batch, or the BatchError that refuses it."""
    reader = JsonRequestReader(Limits())
    try:
        reader.feed(document)
        return reader.close()
    except BatchError as error:
        return error


@pytest.mark.parametrize("document", SURROGATES.values(), ids=SURROGATES.keys())
def test_a_lone_surrogate_in_a_json_batch_is_refused_or_carried(document: bytes) -> None:
    requests = _read_json(document)  # an exception other than BatchError fails the test
    if isinstance(requests, BatchError):
        assert 400 <= requests.status < 500
        return
    for request in requests:
        for response in (OK_ANSWER, INVALID_RESPONSE):
            answer = JsonResponseWriter().part(response, request)
            assert _strict_json(answer)["id"] == request.content_id
        assert _read_json(encode_json_requests([request])) == [request]


# What Python's json.dumps writes for a string decoded with errors="surrogateescape".
@pytest.mark.parametrize("body", [b'"\\udcff"', b'{"name": "caf\\udce9"}', b'["\\ud83d"]'])
def test_a_json_answer_body_with_a_lone_surrogate_escape_is_sent(body: bytes) -> None:
    request = SubRequest("GET", "/", (), b"", "1")
    response = SubResponse(200, "OK", (("Content-Type", "application/json"),), body)
    part = JsonResponseWriter().part(response, request)  # not INVALID_RESPONSE
    answer = b'{"responses":[' + part + b"]}"
    _strict_json(answer)
    ((_, read),) = read_json_responses(answer)
    assert read.body == body or json.loads(read.body) == json.loads(body)


# --------------------------------------------------------------------------------------------
# The JSON format: numbers past a double's range (json-infinity)

HUGE = [b"1e400", b"[-1e400]", b'{"x": 2e308}']


@pytest.mark.parametrize("body", HUGE)
def test_a_json_answer_with_a_huge_number_is_still_strict_json(body: bytes) -> None:
    request = SubRequest("GET", "/", (), b"", "1")
    response = SubResponse(200, "OK", (("Content-Type", "application/json"),), body)
    answer = _json_answer([(response, request)])
    _strict_json(answer)  # json.loads parses 1e400 as inf, which json.dumps writes Infinity
    ((_, read),) = read_json_responses(answer)
    assert read.body == body or _strict_json(read.body) == json.loads(body)


@pytest.mark.parametrize("number", HUGE)
def test_a_json_request_body_with_a_huge_number_reaches_the_app_as_json(number: bytes) -> None:
    requests = _read_json(
        b'{"requests":[{"id":"1","method":"POST","url":"/",'
        b'"headers":{"Content-Type":"application/json"},"body":' + number + b"}]}"
    )
    if isinstance(requests, BatchError):
        assert 400 <= requests.status < 500
        return
    (request,) = requests
    if request.invalid_reason is None:  # refused, it is answered 400; else the app gets JSON
        _strict_json(request.body)  # not b"Infinity"


# --------------------------------------------------------------------------------------------
# The JSON format: what the client accepts from a server (json-answer-validation)

NOT_HTTP = {
    "status 1000": '{"id": "1", "status": 1000}',
    "status -1": '{"id": "1", "status": -1}',
    "a space in a name": '{"id": "1", "status": 200, "headers": {"a b": "c"}}',
    "a number as value": '{"id": "1", "status": 200, "headers": {"X": 5}}',
    "null as value": '{"id": "1", "status": 200, "headers": {"X": null}}',
    "a number in a list": '{"id": "1", "status": 200, "headers": {"X": ["a", 5]}}',
    "not Latin-1": '{"id": "1", "status": 200, "headers": {"X": "5 \\u20ac"}}',
    "CR LF in a value": '{"id": "1", "status": 200, "headers": {"X": "a\\r\\nY: b"}}',
}


@pytest.mark.parametrize("answer", NOT_HTTP.values(), ids=NOT_HTTP.keys())
def test_a_json_answer_http_cannot_carry_is_malformed(answer: str) -> None:
    # The httpx transport encodes each header as Latin-1: a number or a euro sign escaped
    # MalformedBatch as AttributeError or UnicodeEncodeError.
    with pytest.raises(MalformedBatch):
        read_json_responses(b'{"responses": [' + answer.encode() + b"]}")


# --------------------------------------------------------------------------------------------
# The JSON format: deep nesting in an answer (json-answer-recursion, json-nesting-window)


@pytest.mark.parametrize(
    "answer",
    [b"[" * 100_000, b'{"responses": [{"id": "1", "status": 200, "body": ' + b"[" * 100_000],
    ids=["document", "body"],
)
def test_a_deeply_nested_json_answer_is_malformed(answer: bytes) -> None:
    with pytest.raises(MalformedBatch):  # not RecursionError, which the client does not catch
        read_json_responses(answer)


def test_every_json_answer_the_writer_writes_reads_back_whatever_its_nesting() -> None:
    # The writer parses a JSON body to carry it as a value (too deep for the parser, it goes
    # as base64url); read back, it sits 3 levels deeper in the answer. Just under the parser's
    # recursion limit (2 depths, about 990 at the top of a process) the writer inlined bodies
    # that read_json_responses could not read: one part made the whole answer unreadable.
    request = SubRequest("GET", "/", (), b"", "1")
    for depth in range(1, 1200):
        body = b"[" * depth + b"]" * depth
        response = SubResponse(200, "OK", (("Content-Type", "application/json"),), body)
        answer = _json_answer([(response, request)])
        try:
            ((_, read),) = read_json_responses(answer)
        except (MalformedBatch, RecursionError) as error:
            pytest.fail(f"a body nested {depth} deep was written and cannot be read: {error!r}")
        assert read.body == body, depth


# --------------------------------------------------------------------------------------------
# JsonResponseWriter: a part that failed (json-writer-state)

CANNOT_WRITE = {
    "a lone surrogate in a JSON body": SubResponse(
        200, "OK", (("Content-Type", "application/json"),), b'"\\udcff"'
    ),
    "a charset that decodes to a lone surrogate": SubResponse(
        200, "OK", (("Content-Type", "text/plain; charset=unicode_escape"),), b"\\ud800"
    ),
    "CR LF in a header (refused before writing)": SubResponse(200, "OK", (("X", "a\r\nb"),), b""),
}


@pytest.mark.parametrize("response", CANNOT_WRITE.values(), ids=CANNOT_WRITE.keys())
def test_a_part_the_writer_refused_leaves_the_answer_valid(response: SubResponse) -> None:
    # The engine answers INVALID_RESPONSE for a response the writer refused (ValueError), with
    # the same writer: the refusal must not have counted the part as written (a "," before
    # the next one made the whole answer invalid JSON).
    first, second = SubRequest("GET", "/a", (), b"", "1"), SubRequest("GET", "/b", (), b"", "2")
    answer = _json_answer([(response, first), (OK_ANSWER, second)])
    assert [item["id"] for item in _strict_json(answer)["responses"]] == ["1", "2"]


# --------------------------------------------------------------------------------------------
# The JSON format: a body under an empty media type (json-untyped-body)


@pytest.mark.parametrize("content_type", ["", " ", "; charset=utf-8"])
def test_a_request_body_the_server_reads_under_an_empty_type_the_client_can_send(
    content_type: str,
) -> None:
    # The reader carries a body whose Content-Type has no media type as base64url, like an
    # untyped one; encode_json_requests refused the same request: "the JSON batch format
    # cannot carry it".
    document = {
        "requests": [
            {
                "id": "1",
                "method": "POST",
                "url": "/",
                "headers": {"Content-Type": content_type},
                "body": "aGk",
            }
        ]
    }
    requests = _read_json(json.dumps(document).encode())
    if isinstance(requests, BatchError):
        assert 400 <= requests.status < 500
        return
    if requests[0].invalid_reason is None:  # refused, it is answered 400 and never sent again
        assert _read_json(encode_json_requests(requests)) == requests
