"""Content-Encoding of the batch body: gzip and deflate, decompressed under a size limit.

A compressed batch is expanded chunk by chunk and never past ``max_body_size``: a
decompression bomb is refused after at most that many bytes of output.
"""

from __future__ import annotations

import zlib

from .errors import LimitExceeded, MalformedBatch, UnsupportedMediaType

# zlib window bits: gzip framing, zlib framing (HTTP's "deflate"), raw deflate (sent by some).
_GZIP, _ZLIB, _RAW = 31, 15, -15
_CODINGS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}


class BodyDecoder:
    """Push compressed chunks, get decompressed ones; ``close`` checks the stream ended."""

    def __init__(self, coding: str, limit: int) -> None:
        coding = coding.strip().lower()
        if coding not in _CODINGS:
            raise UnsupportedMediaType(
                f"Content-Encoding {coding!r} is not supported: send gzip, deflate or identity"
            )
        self._coding = coding
        self._wbits = _CODINGS[coding]
        self._decompressor = zlib.decompressobj(self._wbits)
        self._limit = limit
        self._room = limit
        self._started = False

    def feed(self, data: bytes) -> bytes:
        try:
            output = self._decompressor.decompress(data, self._room + 1)
        except zlib.error as error:
            if self._wbits == _ZLIB and not self._started:
                # "deflate" without its zlib header: retry as raw deflate.
                self._wbits = _RAW
                self._decompressor = zlib.decompressobj(_RAW)
                return self.feed(data)
            raise MalformedBatch(f"the {self._coding} body is corrupt: {error}") from None
        self._started = True
        self._room -= len(output)
        if self._room < 0:
            raise LimitExceeded(
                "max_body_size",
                self._limit,
                f"the batch body is larger than {self._limit} bytes once decompressed",
            )
        if self._decompressor.unused_data:
            raise MalformedBatch(f"bytes after the end of the {self._coding} stream")
        return output

    def close(self) -> None:
        if not self._decompressor.eof:
            raise MalformedBatch(f"the {self._coding} body is truncated")
