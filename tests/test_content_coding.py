"""The answer's coding: what an ``Accept-Encoding`` field asks for (RFC 9110, 12.5.3), and
the streamed gzip that answers it (the front ends' side: tests/conformance)."""

from __future__ import annotations

import zlib

import pytest

from flask_batch.wire.content_coding import GzipEncoder, accepts_gzip


@pytest.mark.parametrize(
    ("field", "gzip"),
    [
        ("gzip", True),
        ("GZIP;Q=1", True),
        ("deflate, gzip;q=0.001", True),
        ("gzip ; q=0.5 , identity;q=0.5", True),  # a tie: the smaller answer
        ("*;q=0.5, identity;q=0.4", True),
        ("*, gzip;q=0", False),  # the specific entry wins over the wildcard
        ("*;q=0.5, gzip;q=0.3", False),  # identity gets *'s weight, higher
        ("gzip;q=abc", False),  # unreadable: when in doubt, plain
        ("gzip;q=2", False),
        ("gzip;q=nan", False),
        ("gzip;q=0, gzip", False),  # the first entry of a coding counts
        ("identity;q=0, gzip;q=0.1", True),
        ("identity;q=0", False),  # nothing acceptable: plain, the field disregarded
        (",,  ,", False),
    ],
)
def test_accept_encoding_weights(field: str, gzip: bool) -> None:
    assert accepts_gzip(field) is gzip


def test_each_chunk_comes_out_whole_and_the_stream_ends_checked() -> None:
    encoder = GzipEncoder()
    decompressor = zlib.decompressobj(31)
    for chunk in (b"first part " * 100, b"", b"second part"):
        # What came out so far decompresses to everything put in so far.
        assert decompressor.decompress(encoder.encode(chunk)) == chunk
    assert decompressor.decompress(encoder.finish()) == b""
    assert decompressor.eof
