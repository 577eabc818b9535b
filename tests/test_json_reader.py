"""Reading a JSON batch safely (issue 11): limits while reading, bounded memory and work,
one reading of each member, UTF-8 only, bounded nesting, no silent atomicity groups.

Why: ``json.loads`` of the whole body built every array and object before any limit was
checked (``[[],[],...]`` took about 20 bytes of memory per byte), and it let a member named
twice, a UTF-16 body and ``atomicityGroup`` through. The reader now scans the raw bytes; these
tests pin what it refuses, with which status, before what, and at what cost. Work is the
reader's ``scanned`` meter (bytes examined) and memory tracemalloc's peak: nothing is timed.
"""

from __future__ import annotations

import base64
import json
import tracemalloc
from typing import Any

import pytest
from flask import Flask, Response, request

from flask_batch import add_batch_route
from flask_batch.wire.errors import BatchError, LimitExceeded, MalformedBatch
from flask_batch.wire.json_requests import MAX_MEMBERS, JsonRequestReader
from flask_batch.wire.jsontext import MAX_DEPTH
from flask_batch.wire.model import MIB, Limits, SubRequest

from .batching import MULTIPART, problem
from .json_batching import from_url64, item, responses_of, send

JSON_TYPE = {"Content-Type": "application/json"}


def read(document: bytes | dict[str, Any], limits: Limits | None = None) -> list[SubRequest]:
    """The requests of a JSON batch body, fed in 64 KiB chunks as an adapter feeds it."""
    return reading(document, limits)[0]


def reading(
    document: bytes | dict[str, Any], limits: Limits | None = None
) -> tuple[list[SubRequest], JsonRequestReader]:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    reader = JsonRequestReader(limits or Limits())
    for start in range(0, len(data), 65536):
        reader.feed(data[start : start + 65536])
    return reader.close(), reader


def refusal(
    document: bytes | dict[str, Any], limits: Limits | None = None
) -> tuple[BatchError, JsonRequestReader]:
    """The error refusing a batch, and the reader (its ``scanned`` meter)."""
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    reader = JsonRequestReader(limits or Limits())

    def read_all() -> None:
        reader.feed(data)
        reader.close()

    with pytest.raises(BatchError) as caught:
        read_all()
    return caught.value, reader


def batch_of(*items: bytes) -> bytes:
    return b'{"requests": [' + b", ".join(items) + b"]}"


def put(body: bytes, request_id: bytes = b"1", content_type: bytes = b"application/json") -> bytes:
    """A request item carrying ``body`` (raw JSON text) under ``content_type``."""
    return (
        b'{"id": "' + request_id + b'", "method": "PUT", "url": "/x", "headers": '
        b'{"Content-Type": "' + content_type + b'"}, "body": ' + body + b"}"
    )


def brackets(size: int, unit: bytes = b"[]") -> bytes:
    return b"[" + b",".join([unit] * (size // (len(unit) + 1))) + b"]"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --------------------------------------------------------------------------------------------
# Memory and work in proportion to the body, whatever its shape

LARGE = 16 * MIB
LARGE_LIMITS = Limits(max_parts=20_000, max_body_size=LARGE, max_part_size=LARGE)


def many_requests(count: int, size: int) -> bytes:
    """``count`` requests filling ``size`` bytes, each a bracket-dense JSON body."""
    per_request = size // count
    items = [put(brackets(per_request - 90), str(i).encode()) for i in range(count)]
    return batch_of(*items)


SHAPES = {
    "brackets": batch_of(put(brackets(MIB))),
    "objects": batch_of(put(brackets(MIB, b"{}"))),
    "nested": batch_of(put(b"[" + b",".join([nested(MAX_DEPTH - 1)] * (MIB // 130)) + b"]")),
    "many requests": many_requests(2000, MIB),
    "long strings": batch_of(put(b'"' + b"x" * MIB + b'"', content_type=b"text/plain")),
    "escapes": batch_of(put(b'"' + b"\\u00e9\\n" * (MIB // 8) + b'"', content_type=b"text/plain")),
    "base64url": batch_of(put(b'"' + b"QUJD" * (MIB // 4) + b'"', content_type=b"image/png")),
    "unknown members": batch_of(
        *(
            b'{"id": "%d", "method": "GET", "url": "/x", ' % n
            + b", ".join(b'"m%d": [[]]' % i for i in range(MAX_MEMBERS - 3))
            + b"}"
            for n in range(MIB // 12 // MAX_MEMBERS)
        )
    ),
}


@pytest.mark.parametrize("data", SHAPES.values(), ids=SHAPES.keys())
def test_reading_takes_less_than_4_times_the_body_in_memory(data: bytes) -> None:
    chunks = [data[start : start + 65536] for start in range(0, len(data), 65536)]
    reader = JsonRequestReader(LARGE_LIMITS)
    tracemalloc.start()
    try:
        for chunk in chunks:
            reader.feed(chunk)
        before, _ = tracemalloc.get_traced_memory()
        requests = reader.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert requests
    # A body of 1 MiB or more is kept out of Python's heap while it is read (tracemalloc does
    # not see it): count it as held once more.
    assert peak - before + len(data) < 4 * len(data), (peak - before) / len(data) + 1


@pytest.mark.parametrize("data", SHAPES.values(), ids=SHAPES.keys())
def test_reading_examines_each_byte_a_few_times_at_most(data: bytes) -> None:
    _, reader = reading(data, LARGE_LIMITS)
    assert reader.scanned <= 6 * len(data), reader.scanned / len(data)


@pytest.mark.parametrize(
    "data",
    [
        batch_of(put(brackets(MIB)[:-1] + b",x]")),
        batch_of(put(b'"' + b"a" * MIB)),
        batch_of(put(nested(MIB // 2))),
        batch_of(put(b"[" * MAX_DEPTH + b"1," * (MIB // 2) + b"x")),
        many_requests(2000, MIB)[:-3] + b", 1]}",
    ],
    ids=["invalid-at-the-end", "unterminated", "too-deep", "invalid-deep-inside", "last-item"],
)
def test_refusing_an_invalid_body_costs_a_few_passes_too(data: bytes) -> None:
    error, reader = refusal(data, LARGE_LIMITS)
    assert isinstance(error, MalformedBatch)
    assert "JSON" in error.detail
    assert reader.scanned <= 8 * len(data), reader.scanned / len(data)


@pytest.mark.parametrize("chunk", [1000, 65536, 700_001])
def test_a_large_body_reads_alike_in_any_chunks(chunk: int) -> None:
    """From 1 MiB a body is kept in a memory map that grows as it arrives."""
    body = b'"' + b"0123456789abcdef" * (MIB // 8) + b'"'
    data = batch_of(put(b"[1]"), put(body, b"2", b"text/plain"), put(b"{}", b"3"))
    reader = JsonRequestReader(LARGE_LIMITS)
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
    first, second, third = reader.close()
    assert (first.body, second.body, third.body) == (b"[1]", body[1:-1], b"{}")
    for end in (b"\xff", b" \xc3"):  # invalid UTF-8 at the very end of a mapped body
        error, _ = refusal(data + end, LARGE_LIMITS)
        assert "must be UTF-8: invalid UTF-8 at byte " + str(len(data) + len(end) - 1) in str(error)


def test_the_request_past_max_parts_is_refused_before_it_is_read() -> None:
    requests = [item(str(i), "GET", f"/x/{i}") for i in range(3)]
    huge = put(brackets(4 * MIB), b"huge")
    data = batch_of(*(json.dumps(r).encode() for r in requests), huge, huge)
    error, reader = refusal(data, Limits(max_parts=3, max_body_size=LARGE))
    assert isinstance(error, LimitExceeded)
    assert (error.limit, error.value, error.part) == ("max_parts", 3, 4)
    # The UTF-8 check, then the three requests: the fourth is not scanned.
    assert reader.scanned < len(data) + 1000


def test_headers_are_counted_before_they_are_decoded() -> None:
    flood = b"{" + b", ".join(b'"X-%d": "v"' % i for i in range(100_000)) + b"}"
    data = batch_of(b'{"id": "1", "method": "GET", "url": "/", "headers": ' + flood + b"}")
    error, reader = refusal(data, Limits(max_headers=100))
    assert isinstance(error, LimitExceeded)
    assert (error.limit, error.part) == ("max_headers", 1)
    assert reader.scanned <= 4 * len(data)


@pytest.mark.parametrize(
    ("member", "limit", "detail"),
    [
        (b'"url": "/' + b"a" * 100_000 + b'"', "max_header_size", "request line"),
        (b'"url": "/' + b"\\u0041" * 20_000 + b'"', "max_header_size", "request line"),
        (b'"headers": {"X-A": "' + b"v" * 100_000 + b'"}', "max_header_size", "request line"),
        (b'"dependsOn": ["' + b"i" * 100_000 + b'"]', "max_header_size", "part's headers"),
    ],
    ids=["url", "escaped-url", "header", "depends-on"],
)
def test_a_long_string_is_refused_as_the_limit_it_breaks(
    member: bytes, limit: str, detail: str
) -> None:
    data = batch_of(b'{"id": "1", "method": "GET", "url": "/", ' + member + b"}")
    data = data.replace(b'"url": "/", "url"', b'"url"')
    error, _ = refusal(data)
    assert isinstance(error, LimitExceeded), error
    assert (error.limit, error.value, error.part) == (limit, Limits().max_header_size, 1)
    assert detail in error.detail


def test_a_long_id_counts_as_the_part_headers() -> None:
    limits = Limits(max_header_size=64)
    read(batch_of(json.dumps(item("i" * 40, "GET", "/")).encode()), limits)
    error, _ = refusal(batch_of(json.dumps(item("i" * 60, "GET", "/")).encode()), limits)
    assert isinstance(error, LimitExceeded)
    assert (error.limit, error.part) == ("max_header_size", 1)
    assert "part's headers" in error.detail


# --------------------------------------------------------------------------------------------
# One rule for the HTTP head in both formats


def limited_app(max_header_size: int) -> Flask:
    app = Flask(__name__)

    @app.get("/<path:anything>")
    def anything(anything: str) -> str:
        return "ok"

    add_batch_route(app, "/batch", max_header_size=max_header_size)
    return app


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_a_request_line_is_counted_alike_in_both_formats(extra: int) -> None:
    """``GET <url> HTTP/1.1`` CRLF, the header lines and the blank line against
    ``max_header_size``: the same request is refused (or not) in both formats alike."""
    limit = 200
    head = len("GET / HTTP/1.1\r\nAccept: text/plain\r\n\r\n")
    url = "/" + "a" * (limit - head + extra)
    client = limited_app(limit).test_client()
    route = "/batch"
    multipart = (
        f"--test-boundary\r\nContent-Type: application/http\r\n\r\n"
        f"GET {url} HTTP/1.1\r\nAccept: text/plain\r\n\r\n\r\n--test-boundary--\r\n"
    )
    answers = [
        client.post(route, data=multipart, headers={"Content-Type": MULTIPART}),
        send(
            client,
            {"requests": [item("1", "GET", url, headers={"Accept": "text/plain"})]},
            "/batch",
        ),
    ]
    if extra <= 0:
        assert [answer.status_code for answer in answers] == [200, 200]
        return
    refusals = [problem(answer) for answer in answers]
    assert [answer.status_code for answer in answers] == [413, 413]
    assert {(r["limit"], r["value"], r["part"], r["detail"]) for r in refusals} == {
        ("max_header_size", limit, 1, refusals[0]["detail"])
    }


# --------------------------------------------------------------------------------------------
# A member named twice, anywhere, is refused


@pytest.mark.parametrize(
    ("data", "name", "part"),
    [
        (batch_of(b'{"id": "1", "method": "GET", "url": "/a", "url": "/b"}'), "url", 1),
        (batch_of(b'{"id": "1", "method": "GET", "url": "/a", "\\u0075rl": "/b"}'), "url", 1),
        (batch_of(b'{"id": "1", "id": "2", "method": "GET", "url": "/"}'), "id", 1),
        (batch_of(b'{"id": "1", "method": "GET", "url": "/", "x": 1, "x": 1}'), "x", 1),
        (
            batch_of(
                b'{"id": "1", "method": "GET", "url": "/"}',
                b'{"id": "2", "method": "POST", "url": "/", "body": {}, "body": []}',
            ),
            "body",
            2,
        ),
        (b'{"requests": [], "requests": []}', "requests", None),
        (b'{"requests": [], "x": 1, "\\u0078": 2}', "x", None),
    ],
)
def test_a_member_named_twice_is_refused_naming_it(
    data: bytes, name: str, part: int | None
) -> None:
    error, _ = refusal(data)
    assert isinstance(error, MalformedBatch)
    assert error.part == part
    assert f"'{name}' appears twice" in error.detail


def test_a_header_named_twice_in_headers_is_refused() -> None:
    data = batch_of(
        b'{"id": "1", "method": "GET", "url": "/", "headers": {"X-A": "1", "X-\\u0041": "2"}}'
    )
    error, _ = refusal(data)
    assert isinstance(error, MalformedBatch)
    assert (error.part, "'X-A' appears twice") == (1, "'X-A' appears twice")
    assert "X-A" in error.detail
    # Names that differ in case are two fields, as in HTTP.
    (request,) = read(
        batch_of(b'{"id": "1", "method": "GET", "url": "/", "headers": {"X-A": "1", "x-a": "2"}}')
    )
    assert request.headers == (("X-A", "1"), ("x-a", "2"))


@pytest.mark.parametrize(
    ("data", "part"),
    [
        (
            batch_of(
                b'{"id": "1", "method": "GET", "url": "/", '
                + b", ".join(b'"m%d": 0' % i for i in range(MAX_MEMBERS))
                + b"}"
            ),
            1,
        ),
        (
            b'{"requests": [], ' + b", ".join(b'"m%d": 0' % i for i in range(MAX_MEMBERS)) + b"}",
            None,
        ),
    ],
    ids=["request", "batch"],
)
def test_an_object_with_too_many_members_is_refused(data: bytes, part: int | None) -> None:
    """Each name is remembered to refuse one given twice: their number is bounded."""
    error, _ = refusal(data)
    assert isinstance(error, MalformedBatch)
    assert error.part == part
    assert f"more than {MAX_MEMBERS} members" in error.detail


def test_escaped_member_names_are_the_members_they_spell() -> None:
    (request,) = read(
        batch_of(
            b'{"\\u0069d": "1", "m\\u0065thod": "post", "url": "/\\u00e9", '
            b'"h\\u0065aders": {"Content-Type": "text/plain"}, "b\\u006fdy": "caf\\u00e9"}'
        )
    )
    assert request[:5] == (
        "POST",
        "/%C3%A9",
        (("Content-Type", "text/plain"),),
        "café".encode(),
        "1",
    )


# --------------------------------------------------------------------------------------------
# UTF-8 only


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_a_utf16_or_utf32_batch_is_refused(encoding: str) -> None:
    data = json.dumps({"requests": [item("1", "GET", "/")]}).encode(encoding)
    error, _ = refusal(data)
    assert isinstance(error, MalformedBatch)
    assert error.status == 400
    assert "a JSON batch must be UTF-8" in error.detail


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    (request,) = read(b"\xef\xbb\xbf" + json.dumps({"requests": [item("1", "GET", "/")]}).encode())
    assert request.target == "/"


@pytest.mark.parametrize(
    "data",
    [
        batch_of(b'{"id": "\xff", "method": "GET", "url": "/"}'),
        batch_of(put(b'"caf\xe9"', content_type=b"text/plain")),
        batch_of(b'{"id": "1", "method": "GET", "url": "/", "x": "\xed\xa0\x80"}'),
        b'{"requests": []}\xc3',
    ],
    ids=["id", "body", "unknown-member", "after-the-end"],
)
def test_invalid_utf8_anywhere_is_refused(data: bytes) -> None:
    error, _ = refusal(data)
    assert isinstance(error, MalformedBatch)
    assert "must be UTF-8: invalid UTF-8 at byte" in error.detail


# --------------------------------------------------------------------------------------------
# Nesting


def test_a_body_nested_to_the_bound_is_read_and_one_level_more_is_refused() -> None:
    (request,) = read(batch_of(put(nested(MAX_DEPTH))))
    assert request.body == nested(MAX_DEPTH)
    for body in (nested(MAX_DEPTH + 1), b"[" * 100_000):
        error, _ = refusal(batch_of(b'{"id": "0", "method": "GET", "url": "/"}', put(body)))
        assert isinstance(error, MalformedBatch)
        assert error.part == 2
        assert f"arrays and objects nest deeper than {MAX_DEPTH} levels" in error.detail


def test_an_unknown_member_nested_too_deep_is_refused_too() -> None:
    error, _ = refusal(b'{"requests": [], "x": ' + nested(MAX_DEPTH + 1) + b"}")
    assert isinstance(error, MalformedBatch)
    assert (error.part, "deeper" in error.detail) == (None, True)


# --------------------------------------------------------------------------------------------
# JSON bodies as they were written


def test_a_json_body_is_passed_on_as_written() -> None:
    body = b'{ "b" :[1, 2.50, "\\u00e9", "\xc3\xa9"],\n "a": -0.0e+00 , "big": 1e400 }'
    (request,) = read(batch_of(put(body)))
    assert request.body == body
    assert request.invalid_reason is None


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'"line\\nbreak \\u00e9 \\ud83d\\ude00"', b"text/plain", "line\nbreak é 😀".encode()),
        (b'"caf\\u00e9"', b"text/plain; charset=latin-1", b"caf\xe9"),
        (b'"QUJD\\/+_-"', b"application/octet-stream", base64.b64decode("QUJD/+/+")),
        (b'"aGk"', b"application/octet-stream", b"hi"),
    ],
)
def test_text_and_base64url_bodies_are_decoded_from_their_string(
    body: bytes, content_type: bytes, expected: bytes
) -> None:
    (request,) = read(batch_of(put(body, content_type=content_type)))
    assert request.invalid_reason is None
    assert request.body == expected


def test_a_large_base64url_body_is_decoded_in_pieces() -> None:
    data = bytes(range(256)) * 2000
    encoded = base64.urlsafe_b64encode(data).rstrip(b"=")
    (request,) = read(batch_of(put(b'"' + encoded + b'"', content_type=b"image/png")))
    assert request.body == data
    limits = Limits(max_part_size=len(data) - 1)
    error, _ = refusal(batch_of(put(b'"' + encoded + b'"', content_type=b"image/png")), limits)
    assert isinstance(error, LimitExceeded)
    assert (error.limit, error.part) == ("max_part_size", 1)


# --------------------------------------------------------------------------------------------
# Through an application


def make_app() -> Flask:
    """``/echo`` answers the body it received, and records its method in RAN."""
    app = Flask(__name__)
    ran: list[str] = []
    app.config["RAN"] = ran

    @app.route("/echo", methods=["GET", "PUT", "POST"])
    def echo() -> Response:
        ran.append(request.method)
        return Response(request.get_data(), content_type="application/octet-stream")

    add_batch_route(app, "/batch")
    return app


def test_the_application_receives_the_json_body_byte_for_byte(app: Flask) -> None:
    body = b'{"b":  [1, 2.50, "\\u00e9"],\n "a": 1e400}'
    data = batch_of(
        b'{"id": "1", "method": "PUT", "url": "/echo", "headers": '
        b'{"Content-Type": "application/json"}, "body": ' + body + b"}"
    )
    (answer,) = responses_of(send(app.test_client(), data, "/batch"))
    assert from_url64(answer["body"]) == body
    assert answer["headers"]["Content-Length"] == str(len(body))


@pytest.mark.parametrize("group", ["null", "1", "{}", '""'])
def test_an_atomicity_group_that_is_not_a_name_is_refused(app: Flask, group: str) -> None:
    document = (
        b'{"requests": [{"id": "1", "method": "PUT", "url": "/echo"}, '
        b'{"id": "2", "method": "PUT", "url": "/echo", "atomicityGroup": ' + group.encode() + b"}]}"
    )
    answer = send(app.test_client(), document, "/batch")
    assert answer.status_code == 400
    refused = problem(answer)
    assert refused["part"] == 2
    assert "atomicityGroup" in refused["detail"]
    assert app.config["RAN"] == []  # nothing ran, the first write included
