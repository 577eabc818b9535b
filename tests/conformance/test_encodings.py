"""A compressed batch body (``Content-Encoding``): decoded as it arrives, bounded by
``max_body_size`` after decompression (a bomb is refused without being expanded), refused
with a ``400`` when corrupt and a ``415`` in a coding the endpoint does not know; on every
front end alike."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from functools import cache

import pytest

from flask_batch.wire.model import MIB

from .conftest import Server
from .wire import OK, body, post

#: max_body_size is 1 MiB there.
MIB_BODY = "/batch/mib-body"


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_a_gzip_batch_is_decompressed(server: Server) -> None:
    message = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    data = _gzip(body(OK, message))
    ok, echo = post(server.base, "/batch", data, headers=[("Content-Encoding", "gzip")]).parts()
    assert (ok.body, echo.body) == (b"ok", b"hello")


def test_a_deflate_batch_is_decompressed(server: Server) -> None:
    # HTTP's "deflate" is the zlib format (RFC 9110 section 8.4.1.2).
    data = zlib.compress(body(OK, OK))
    answer = post(server.base, "/batch", data, headers=[("Content-Encoding", "deflate")])
    assert [r.status for r in answer.parts()] == [200, 200]


def test_a_gzip_batch_at_the_decompressed_limit_is_accepted_and_one_byte_more_refused(
    server: Server,
) -> None:
    core = body(OK, OK)
    exact = b"x" * (MIB - len(core) - 2) + b"\r\n" + core  # padded with a preamble
    assert len(exact) == MIB
    headers = [("Content-Encoding", "gzip")]
    answer = post(server.base, MIB_BODY, _gzip(exact), headers=headers)
    assert [r.status for r in answer.parts()] == [200, 200]
    server.ran.clear()
    document = server.refused(_gzip(b"y" + exact), 413, route=MIB_BODY, headers=headers)
    assert (document["limit"], document["value"]) == ("max_body_size", MIB)


@cache
def _bomb() -> bytes:
    """64 MiB of zeros in about 64 KB of gzip."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MIB)
    return b"".join([compressor.compress(block) for _ in range(64)] + [compressor.flush()])


def test_a_gzip_bomb_is_refused_without_expanding_it(server: Server) -> None:
    bomb = _bomb()
    assert len(bomb) < MIB  # the compressed body itself is within the limit
    tracemalloc.start()  # the server runs in this process: its allocations are traced too
    try:
        answer = post(server.base, MIB_BODY, bomb, headers=[("Content-Encoding", "gzip")])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status == 413
    document = answer.problem()
    assert (document["limit"], document["value"]) == ("max_body_size", MIB)
    assert peak < 16 * MIB, f"{peak} bytes allocated: the bomb was expanded"
    server.check_healthy()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_corrupt_compressed_body_is_a_400(server: Server, encoding: str) -> None:
    document = server.refused(body(OK), headers=[("Content-Encoding", encoding)])
    assert encoding in document["detail"]


def test_a_truncated_gzip_body_is_a_400(server: Server) -> None:
    data = _gzip(body(OK, OK))
    document = server.refused(data[: len(data) // 2], headers=[("Content-Encoding", "gzip")])
    assert "gzip" in document["detail"]


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "x-custom"])
def test_other_content_encodings_are_refused_with_415(server: Server, encoding: str) -> None:
    document = server.refused(body(OK), 415, headers=[("Content-Encoding", encoding)])
    assert f"'{encoding}'" in document["detail"]


def test_identity_content_encoding_is_accepted(server: Server) -> None:
    answer = post(server.base, "/batch", body(OK), headers=[("Content-Encoding", "identity")])
    assert [r.status for r in answer.parts()] == [200]
