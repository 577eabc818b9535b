"""Content codings both ways: batch bodies in gzip or deflate, answers in gzip.

A compressed batch is expanded chunk by chunk and never past ``max_body_size``: a
decompression bomb is refused after at most that many bytes of output. The result does not
depend on how the compressed bytes were chunked.

An answer is compressed as it streams (:class:`GzipEncoder`) when the request's
``Accept-Encoding`` prefers gzip (:func:`accepts_gzip`); every chunk written comes out whole,
so compressing never holds a part back.
"""

from __future__ import annotations

import zlib

from .errors import LimitExceeded, MalformedBatch, UnsupportedMediaType

__all__ = [
    "LEVEL",
    "REQUEST_CODINGS",
    "BodyDecoder",
    "GzipEncoder",
    "UnsupportedCoding",
    "accepts_gzip",
    "gzip_body",
]

# zlib window bits: gzip framing, zlib framing (HTTP's "deflate"), raw deflate (sent by some).
_GZIP, _ZLIB, _RAW = 31, 15, -15
_CODINGS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}
#: The codings a batch body may come in, as an endpoint's ``Accept-Encoding`` answer header
#: advertises them (RFC 9110, 12.5.3: in a response, it lists the codings of requests).
REQUEST_CODINGS = "gzip, deflate"
#: zlib's level, answers and clients' batch bodies alike: level 6 (zlib's default) costs
#: 3 to 6 times level 1's CPU for a batch, and saves 1% more (docs/performance.md).
LEVEL = 1


class UnsupportedCoding(UnsupportedMediaType):
    """A batch body in a coding the endpoint does not decode: the ``415`` says which it does
    (RFC 9110, 15.5.16), which tells a client it is the coding, not the media type."""

    headers = (("Accept-Encoding", REQUEST_CODINGS),)


def _is_zlib_header(first: bytes) -> bool:
    """Whether two bytes open a zlib stream (RFC 1950: deflate method, checksum of 31)."""
    return first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0


class BodyDecoder:
    """Push compressed chunks, get decompressed ones; ``close`` checks the stream ended."""

    def __init__(self, coding: str, limit: int) -> None:
        coding = coding.strip().lower()
        if coding not in _CODINGS:
            raise UnsupportedCoding(
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


def gzip_body(data: bytes) -> bytes:
    """``data`` in gzip, in one go (a client's batch body)."""
    return zlib.compress(data, LEVEL, wbits=_GZIP)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an answer to a request with this ``Accept-Encoding`` goes in gzip (RFC 9110,
    12.5.3): gzip (``x-gzip``, or ``*``) has a weight above 0 and at least identity's.

    No field: identity (a client that decodes gzip says so); an empty one: identity only.
    identity weighs what it is given, else what ``*`` is, else nothing (the least preferred).
    A weight that cannot be read counts as 0: when in doubt, nothing is compressed.
    """
    if accept_encoding is None:
        return False
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, parameters = item.partition(";")
        coding = coding.strip().lower()
        if coding:
            weights.setdefault(coding, _weight(parameters))
    wildcard = weights.get("*")
    gzip = weights.get("gzip", weights.get("x-gzip", wildcard or 0.0))
    identity = weights.get("identity", wildcard or 0.0)
    return gzip > 0 and gzip >= identity


def _weight(parameters: str) -> float:
    """The ``q`` of a coding's parameters (``;q=0.5``): 1 if absent, 0 if unreadable."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                return 0.0
            return weight if 0 <= weight <= 1 else 0.0
    return 1.0


class GzipEncoder:
    """An answer compressed as it streams: each chunk put in comes out whole (a sync flush
    after it, about 5 bytes), so a part is never held back for the next one; the schedule
    already decides when parts are worth sending (:mod:`flask_batch.schedule`). Its state
    is zlib's window, about 256 KiB, whatever the size of the answer."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, _GZIP)

    def encode(self, chunk: bytes) -> bytes:
        """``chunk`` compressed, with everything before it."""
        return self._compressor.compress(chunk) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """The end of the gzip stream (its trailer: the checksum and the length)."""
        return self._compressor.flush(zlib.Z_FINISH)
