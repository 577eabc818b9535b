"""Write the seed corpus, ``fuzz/corpus/seeds/``: the recorded client batches and crafted inputs.

    python -m fuzz.make_seeds

Every seed is in the fuzzer's input layout (``fuzz/targets.py``): the target byte and its
parameters, then the payload. The recorded batches of ``tests/data/wire-samples`` go in
without their outer HTTP head (its Content-Type becomes the reader's Content-Type line).
"""

from __future__ import annotations

import codecs
import gzip
import json
import zlib
from pathlib import Path

from fuzz.targets import (
    GZIP,
    RAW_DEFLATE,
    ZLIB,
    decoder_input,
    exchange,
    json_answer,
    json_answers_input,
    json_input,
    message_input,
    reader_input,
    roundtrip_input,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data" / "wire-samples"
SEEDS = ROOT / "fuzz" / "corpus" / "seeds"
REGRESSIONS = ROOT / "fuzz" / "corpus" / "regressions"

SMALL = bytes([3, 40, 40, 20, 8])  # limits: 4 parts, 2592 body, 1296 part, 168 header, 9 fields
MIXED = b"multipart/mixed; boundary=b"
# gzip: a block of 2 literals (over a limit of 1 byte), then a stored block with bad lengths.
OVER_THEN_CORRUPT = bytes.fromhex("1f8b0800000000000003cac8040000 00ffff 0005000000")


def recorded() -> dict[str, tuple[bytes, bytes]]:
    """Each recorded batch as (Content-Type, body), named after its client and number."""
    batches = {}
    for path in sorted(SAMPLES.glob("*/*.raw")):
        head, _, body = path.read_bytes().partition(b"\r\n\r\n")
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        content_type = next(v for k, v in fields.items() if k.lower() == b"content-type")
        batches[f"{path.parent.name}-{path.name[:3]}"] = (content_type.strip(), body)
    return batches


def crafted_batches() -> dict[str, bytes]:
    crlf = (
        b"--b\r\nContent-Type: application/http\r\nContent-ID: <1>\r\n\r\n"
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\n"
        b"--b\r\nContent-Type: application/http\r\n\r\n"
        b"POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\r\n--b--\r\n"
    )
    # An OData changeset between two parts: two members, one without a Content-ID.
    changeset = (
        b"--b\r\nContent-Type: application/http\r\n\r\nGET /a HTTP/1.1\r\n\r\n\r\n"
        b"--b\r\nContent-Type: multipart/mixed; boundary=changeset_1\r\n\r\n"
        b"--changeset_1\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\n"
        b"POST /c HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}\r\n"
        b"--changeset_1\r\nContent-Type: application/http\r\n\r\n"
        b"PATCH /c HTTP/1.1\r\n\r\n\r\n--changeset_1--\r\n"
        b"--b\r\nContent-Type: application/http\r\n\r\nDELETE /a HTTP/1.1\r\n\r\n\r\n--b--\r\n"
    )
    return {
        "crlf": reader_input(MIXED, crlf),
        "crlf-chunked": reader_input(MIXED, crlf, chunks=bytes([1, 5, 0, 17, 3, 60])),
        "crlf-small-limits": reader_input(MIXED, crlf, limits=bytes([1, 1, 2, 4, 1])),
        "lf-preamble-epilogue": reader_input(
            b'multipart/mixed; boundary="a b"',
            b"preamble\n--a b\nContent-Type: application/http\n\nDELETE /x\n"
            b"--a b  \n\nGET /y HTTP/1.0\n\n--a b--\nepilogue",
            chunks=bytes([9, 2]),
        ),
        "chunked-part": reader_input(
            MIXED,
            b"--b\r\n\r\nPOST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;x=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\r\n--b--",
        ),
        "folded-content-id": reader_input(
            MIXED, b"--b\r\nContent-ID:\r\n <folded\r\n\tid>\r\n\r\nGET /\r\n--b--\r\n"
        ),
        "truncated": reader_input(MIXED, b"--b\r\n\r\nGET / HTTP/1.1\r\n\r\n--"),
        "no-blank-line": reader_input(MIXED, b"--b\r\nContent-Type: application/http\r\n--b--"),
        "empty-parts": reader_input(MIXED, b"--b\r\n\r\n" * 6 + b"--b--"),
        "too-many-parts": reader_input(MIXED, b"--b\r\n\r\nGET /\r\n" * 6 + b"--b--", limits=SMALL),
        "nested": reader_input(
            MIXED,
            b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c--\r\n--b--\r\n",
        ),
        "changeset": reader_input(MIXED, changeset, chunks=bytes([7, 40, 3, 90])),
        "changeset-small-limits": reader_input(MIXED, changeset, limits=bytes([1, 8, 2, 8, 3])),
        "changeset-holding-a-get": reader_input(MIXED, changeset.replace(b"PATCH /c", b"GET /c")),
        "changeset-in-a-changeset": reader_input(
            MIXED,
            b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
            b"--c\r\nContent-Type: multipart/mixed; boundary=d\r\n\r\n"
            b"--d\r\n\r\nPUT /\r\n--d--\r\n--c--\r\n--b--\r\n",
        ),
    }


def hostile_shapes() -> dict[str, bytes]:
    """Bodies whose shape once made the reader's work superlinear, or could (the cost oracle,
    ``check_cost``): blanks after a boundary, near-delimiters, long lines, endless parts. Up
    to 300 bytes, so that the target also reads them byte by byte."""
    boundary = b"multipart/mixed; boundary=boundary"
    dash = b"--boundary"
    part = dash + b"\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n\r\n"
    close = dash + b"--\r\n"
    blanks = b" \t" * 100
    post = dash + b"\r\n\r\nPOST /x HTTP/1.1\r\n\r\n"
    return {
        "preamble-blanks-then-delimiter": reader_input(
            boundary, dash + blanks + b"\r\n\r\nGET /\r\n" + close
        ),
        "preamble-blanks-then-content": reader_input(
            boundary, b"x\n" + dash + blanks + b"\rx\n" + part + close
        ),
        "part-blanks-then-delimiter": reader_input(
            boundary, post + b"body\r\n" + dash + blanks + b"\r\n\r\nGET /\r\n" + close
        ),
        "part-blanks-then-content": reader_input(
            boundary, post + b"body\r\n" + dash + blanks + b"-\r\n" + close
        ),
        # Limits 255 but the part's: 16 + 4 * 32 bytes, less than the blanks.
        "part-blanks-over-the-limit": reader_input(
            boundary, post + b"\r\n" + dash + blanks, limits=bytes([255, 255, 4, 255, 255])
        ),
        # Chunks of 192 bytes (byte 130): a body too long to be read byte by byte.
        "part-blanks-chunked": reader_input(
            boundary,
            post + b"\r\n" + dash + b" " * 2800 + b"\r\n\r\nGET /\r\n" + close,
            chunks=bytes([130] * 15),
        ),
        "near-delimiters": reader_input(
            boundary, post + b"\r\n--boundar\n--boundaryX\n--boundary -" * 5 + b"\r\n" + close
        ),
        "part-header-line": reader_input(
            boundary, dash + b"\r\nX-Long: " + b"a" * 200 + b"\r\n\r\nGET /\r\n" + close
        ),
        "http-header-line": reader_input(
            boundary,
            dash + b"\r\n\r\nGET / HTTP/1.1\r\nX-Long: " + b"a" * 200 + b"\r\n\r\n" + close,
        ),
        "part-that-never-ends": reader_input(boundary, post + b"x" * 200),
        "many-tiny-parts": reader_input(
            b"multipart/mixed; boundary=b", b"--b\r\n\r\nGET /\r\n" * 20
        ),
    }


def messages() -> dict[str, bytes]:
    return {
        "get": message_input(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", part=1),
        "post": message_input(b"\r\nPOST /p HTTP/1.1\nContent-Length: 3\n\nabc\r\n\r\n"),
        "chunked": message_input(
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\n",
            part=7,
        ),
        "obs-fold": message_input(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", headers=1),
        "version": message_input(b"GET / HTTP/2.0\r\n\r\n", header_size=2),
        "response": message_input(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        ),
        "response-204": message_input(b'HTTP/1.1 204\r\nETag: "x"\r\n\r\n'),
    }


def roundtrips() -> dict[str, bytes]:
    get = exchange(b"GET", b"/a?b=c", headers=[(b"Accept", b"*/*")], content_id=b"<1>")
    post = exchange(
        b"POST",
        b"http://h/p",
        headers=[(b"Content-Type", b"text/plain"), (b"Content-Length", b"9")],
        body=b"line\r\n--b",
        status=201,
        reason=b"",
        response_headers=[(b"Location", b"/p/1"), (b"Connection", b"close")],
        response_body=b"{}",
    )
    head = exchange(
        b"HEAD",
        b"/h",
        content_id=b"x",
        status=304,
        response_headers=[(b"Content-Length", b"42")],
        response_body=b"dropped",
    )
    return {
        "get": roundtrip_input(b"b", [get]),
        "three": roundtrip_input(b"batch_0123", [get, post, head], chunk=6),
    }


def decoder_seeds(body: bytes) -> dict[str, bytes]:
    return {
        "gzip": decoder_input(body, mode=GZIP, chunks=bytes([10, 1, 200])),
        "deflate": decoder_input(body, coding=2, mode=ZLIB, chunks=bytes([2, 30])),
        "raw-deflate": decoder_input(body, coding=3, mode=RAW_DEFLATE, limit=4),
        "gzip-bytes": decoder_input(gzip.compress(b"--b\r\n\r\nGET /\r\n--b--", mtime=0), coding=1),
        "zlib-bytes": decoder_input(zlib.compress(b"abc" * 50), coding=2, limit=1),
    }


def json_documents() -> dict[str, bytes]:
    """JSON batch requests (the OData / Microsoft Graph shape) and JSON answers to write."""
    get = {"id": "1", "method": "GET", "url": "/api/people/alice?x=1"}
    post = {
        "id": "é2",
        "method": "post",
        "url": "people/a b",
        "headers": {"Content-Type": "application/json", "X-Status": "201"},
        "body": {"name": "Zoë", "age": 31, "ratio": -2.5e-3, "tags": ["a", None, True], "n": {}},
        "dependsOn": ["1"],
    }
    text = {
        "id": "3",
        "method": "PUT",
        "url": "http://localhost/api/echo",
        "headers": {"content-type": "text/plain; charset=utf-16", "X-Reply": "application/json"},
        "body": '[1, 2.0, "\\u00e9"]',
    }
    binary = {
        "id": "4",
        "method": "PATCH",
        "url": "/b",
        "headers": {"Content-Type": "application/octet-stream", "X-Reply": "text/plain"},
        "body": "aGVsbG8-_w",
        "depends_on": ["1", "3"],
    }
    null = {
        "id": "5",
        "method": "DELETE",
        "url": "/n",
        "headers": {"Content-Type": "application/merge-patch+json"},
        "body": None,
    }
    batch = json.dumps({"requests": [get, post, text, binary, null]}).encode()
    return {
        "read-graph": json_input(batch),
        "read-graph-chunked": json_input(batch, chunks=bytes([1, 40, 0, 90, 7])),
        "read-graph-small-limits": json_input(batch, limits=bytes([7, 40, 4, 10, 3])),
        "read-compact": json_input(
            json.dumps({"requests": [get, null]}, separators=(",", ":")).encode()
        ),
        "read-escapes": json_input(
            b'{"requests": [{"id": "\\u0031\\n", "method": "GET", "url": "/\\u00e9\\t",'
            b' "headers": {"Accept": "*/*"}}]}',
            chunks=bytes([3, 17]),
        ),
        "read-empty": json_input(b'{"requests": []}'),
        "read-utf16": json_input(json.dumps({"requests": [get]}).encode("utf-16")),
        "read-not-a-batch": json_input(b'[{"id": "1"}]'),
        "read-duplicate-id": json_input(json.dumps({"requests": [get, get]}).encode()),
        "read-answer": json_input(
            b'{"responses": [{"id": "1", "status": 200, "headers": {"Content-Type":'
            b' "application/json"}, "body": {"a": [1]}}, {"id": 2, "status": 404}]}'
        ),
        "read-nested": json_input(
            b'{"requests": [{"id": "d", "method": "POST", "url": "/", "headers":'
            b' {"Content-Type": "application/json"}, "body": ' + b"[" * 40 + b"]" * 40 + b"}]}"
        ),
        # Issue 11: what the reader of raw bytes refuses, and what it passes on as written.
        "read-exact-body": json_input(
            b'{"requests": [{"id": "x", "method": "PUT", "url": "/", "headers": {"Content-Type":'
            b' "application/json"}, "body": {"a" :[1, 2.50, -0e0, 1e400, "\u00e9\\/"] }}]}'
        ),
        "read-deepest-body": json_input(
            b'{"requests": [{"id": "d", "method": "POST", "url": "/", "headers":'
            b' {"Content-Type": "application/json"}, "body": '
            + (b"[{}," * 63 + b"1" + b"]" * 63)
            + b"}]}"
        ),
        "read-too-deep": json_input(b'{"requests": [], "x": ' + b'{"a":[' * 33 + b"]}" * 33 + b"}"),
        "read-member-twice": json_input(
            b'{"requests": [{"id": "1", "method": "GET", "url": "/a", "\u0075rl": "/b"}]}'
        ),
        "read-header-twice": json_input(
            b'{"requests": [{"id": "1", "method": "GET", "url": "/",'
            b' "headers": {"X-A": "1", "x-a": "2", "X-A": "3"}}]}'
        ),
        "read-escaped-names": json_input(
            b'{"requ\u0065sts": [{"\u0069d": "1", "m\u0065thod": "GET", "url": "/", "ex": '
            b'{"tra": [null, {"s": "\ud83d\ude00"}]}, "b\u006fdy": "eA", "headers": '
            b'{"Content-Type": "image/png"}}]}'
        ),
        "read-atomicity-group": json_input(
            b'{"requests": [{"id": "1", "method": "PUT", "url": "/", "atomicityGroup": "g"}]}'
        ),
        "read-atomicity-groups-split": json_input(
            b'{"requests": [{"id": "1", "method": "PUT", "url": "/", "atomicityGroup": "g"},'
            b' {"id": "2", "method": "PUT", "url": "/", "atomicityGroup": "h"},'
            b' {"id": "3", "method": "PUT", "url": "/", "atomicityGroup": "g",'
            b' "dependsOn": ["h"]}]}'
        ),
        "read-bom": json_input(codecs.BOM_UTF8 + json.dumps({"requests": [get]}).encode()),
        "read-utf32": json_input(json.dumps({"requests": [get]}).encode("utf-32-le")),
        "read-long-url": json_input(
            json.dumps({"requests": [{**get, "url": "/" + "a" * 120}]}).encode(),
            limits=bytes([255, 255, 255, 14, 255]),
        ),
        "write-answers": json_answers_input(
            [
                json_answer(b"1", body=b'{"a": [1, 2.5, null], "b": "\\u00e9"}'),
                json_answer(
                    b"a\\u00e9b",
                    method=1,
                    status=304,
                    content_type=4,
                    headers=[(b"Content-Length", b"42"), (b"ETag", b'"x"')],
                    body=b"dropped",
                ),
                json_answer(
                    b"3",
                    method=2,
                    status=201,
                    content_type=6,
                    headers=[(b"Set-Cookie", b"a=1"), (b"Vary", b"*"), (b"Set-Cookie", b"b=2")],
                    body=b"\xff\xfeplain",
                ),
                json_answer(b"4", status=500, content_type=7, body=bytes(range(0, 256, 8))),
            ]
        ),
        "write-not-json": json_answers_input(
            [
                json_answer(b"x", content_type=0, body=b'{"x": NaN}'),
                json_answer(b"y", content_type=2, body=b"1 2"),
                json_answer(b"z", status=204, content_type=8, headers=[(b"Connection", b"close")]),
            ]
        ),
        "write-fuzzed-type": json_answers_input(
            [json_answer(b"t", content_type=b"text/x; charset=ascii", body=b"caf\xe9 -0.0")]
        ),
    }


def regressions() -> dict[str, bytes]:
    """The findings of fuzz/README.md, minimised by hand (``make fuzz`` does not read them)."""
    fields = b"a: b\r\n" * 64 + b"\x01\r\n"
    part_order = b"--b\r\n\r\nBAD\r\n--b\r\nX\r\n\r\n\r\n--b--\r\n"
    too_many = b"--b\r\n\r\nBAD\r\n--b\r\n\r\n\r\n--b\r\n\r\n\r\n--b--\r\n"
    cut = bytes([part_order.index(b"--b", 1) + 5])  # just after part 2's delimiter line
    return {
        "header-backtracking-part": reader_input(
            MIXED, b"--b\r\n" + fields + b"\r\nGET /\r\n--b--\r\n"
        ),
        "header-backtracking-request": message_input(b"GET / HTTP/1.1\r\n" + fields + b"\r\n"),
        "header-backtracking-response": message_input(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n"),
        "part-order": reader_input(MIXED, part_order, chunks=cut),
        "part-order-max-parts": reader_input(
            MIXED, too_many, limits=bytes([1, 255, 255, 255, 255]), chunks=cut
        ),
        "deflate-start-empty-chunk": decoder_input(
            b"hello, batch", coding=2, mode=RAW_DEFLATE, chunks=b"\x00"
        ),
        "deflate-start-1-byte": decoder_input(
            b"hello, batch", coding=2, mode=RAW_DEFLATE, chunks=b"\x01"
        ),
        "unquoted-boundary": roundtrip_input(b"a b", [exchange(b"GET", b"/")]),
        "unicode-digit-length": message_input(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nok"),
        "decoder-error-order": decoder_input(
            OVER_THEN_CORRUPT, limit=0, chunks=bytes([len(OVER_THEN_CORRUPT) - 5])
        ),
        **json_regressions(),
    }


def json_regressions() -> dict[str, bytes]:
    """The findings of the JSON target (fuzz/README.md), minimised by hand."""

    def request(request_id: bytes = b"1", url: bytes = b"/", extra: bytes = b"") -> bytes:
        return b'{"requests":[{"id":"%s","method":"POST","url":"%s"%s}]}' % (request_id, url, extra)

    json_body = b',"headers":{"Content-Type":"application/json"},"body":'
    return {
        "json-surrogate-url": json_input(request(url=b"/\\ud800")),
        "json-surrogate-id": json_input(request(b"\\ud800")),
        "json-surrogate-id-answer": json_answers_input([json_answer(b"\\ud800")]),
        "json-surrogate-depends-on": json_input(request(extra=b',"dependsOn":["\\udfff"]')),
        "json-surrogate-body-answer": json_answers_input([json_answer(b"1", body=b'"\\udcff"')]),
        "json-infinity-answer": json_answers_input([json_answer(b"1", body=b"[1e400]")]),
        "json-infinity-request": json_input(request(extra=json_body + b"-1e400")),
        "json-answer-status": json_input(b'{"responses":[{"id":"1","status":1000}]}'),
        "json-answer-header-name": json_input(
            b'{"responses":[{"id":"1","status":200,"headers":{"a b":"c"}}]}'
        ),
        "json-answer-header-value": json_input(
            b'{"responses":[{"id":"1","status":200,"headers":{"X":5}}]}'
        ),
        "json-answer-recursion": json_input(b"[" * 2000),
        "json-untyped-body": json_input(
            request(extra=b',"headers":{"Content-Type":""},"body":"aGk"')
        ),
    }


def main() -> None:
    SEEDS.mkdir(parents=True, exist_ok=True)
    seeds = {}
    for name, (content_type, body) in recorded().items():
        seeds[f"reader-{name}"] = reader_input(content_type, body)
        seeds[f"reader-{name}-chunked"] = reader_input(
            content_type, body, chunks=bytes([1, 70, 0, 130, 2, 255])
        )
        seeds[f"reader-{name}-small-limits"] = reader_input(content_type, body, limits=SMALL)
    seeds.update({f"reader-{name}": data for name, data in crafted_batches().items()})
    seeds.update({f"reader-{name}": data for name, data in hostile_shapes().items()})
    seeds.update({f"message-{name}": data for name, data in messages().items()})
    seeds.update({f"roundtrip-{name}": data for name, data in roundtrips().items()})
    _, sample = recorded()["google-cloud-storage-002"]
    seeds.update({f"decoder-{name}": data for name, data in decoder_seeds(sample).items()})
    seeds.update({f"json-{name}": data for name, data in json_documents().items()})
    for name, data in seeds.items():
        (SEEDS / name).write_bytes(data)
    REGRESSIONS.mkdir(parents=True, exist_ok=True)
    for name, data in regressions().items():
        (REGRESSIONS / name).write_bytes(data)
    print(
        f"{len(seeds)} seeds, {len(regressions())} regressions in {SEEDS.parent.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
