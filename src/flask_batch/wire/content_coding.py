"""Content-Encoding of the batch body: gzip and deflate, decompressed under a size limit.

A compressed batch is expanded chunk by chunk and never past ``max_body_size``: a
decompression bomb is refused after at most that many bytes of output. The result does not
depend on how the compressed bytes were chunked.
"""

from __future__ import annotations

import zlib

from .errors import LimitExceeded, MalformedBatch, UnsupportedMediaType

__all__ = ["BodyDecoder"]

# zlib window bits: gzip framing, zlib framing (HTTP's "deflate"), raw deflate (sent by some).
_GZIP, _ZLIB, _RAW = 31, 15, -15
_CODINGS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}


def _is_zlib_header(first: bytes) -> bool:
    """Whether two bytes open a zlib stream (RFC 1950: deflate method, checksum of 31)."""
    return first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0


class BodyDecoder:
    """Push compressed chunks, get decompressed ones; ``close`` checks the stream ended."""

    def __init__(self, coding: str, limit: int) -> None:
        coding = coding.strip().lower()
        if coding not in _CODINGS:
            raise UnsupportedMediaType(
                f"Content-Encoding {coding!r} is not supported: send gzip, deflate or identity"
            )
        self._coding = coding
        self._limit = limit
        self._room = limit
        # "deflate" is zlib-framed by the standard, raw by some clients: the first two bytes
        # tell, so they are held until both have arrived.
        self._pending = b""
        self._decompressor = zlib.decompressobj(_GZIP) if coding != "deflate" else None

    def feed(self, data: bytes) -> bytes:
        if self._decompressor is None:
            self._pending += data
            if len(self._pending) < 2:
                return b""
            data, self._pending = self._pending, b""
            self._decompressor = zlib.decompressobj(_ZLIB if _is_zlib_header(data) else _RAW)
        before = self._decompressor.copy()
        try:
            output = self._decompressor.decompress(data, self._room + 1)
        except zlib.error as error:
            # zlib drops the output it made before the corrupt bytes, where the size limit may
            # have come first (as it would have in smaller chunks): replay the chunk in halves,
            # down to the failing byte (log2 of the chunk's length in replays).
            self._decompressor = before
            if len(data) > 1:
                middle = len(data) // 2
                return self.feed(data[:middle]) + self.feed(data[middle:])
            raise MalformedBatch(f"the {self._coding} body is corrupt: {error}") from None
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
        if self._decompressor is None or not self._decompressor.eof:
            raise MalformedBatch(f"the {self._coding} body is truncated")
