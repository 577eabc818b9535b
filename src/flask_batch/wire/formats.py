"""Which batch format a request speaks: its reader, and the writer of its answer."""

from __future__ import annotations

from typing import Protocol

from .errors import UnsupportedMediaType
from .json_answers import JsonDialect, JsonResponseWriter
from .json_bodies import MEDIA_TYPE
from .json_requests import JsonRequestReader
from .media_type import boundary_param, parse_media_type
from .model import Limits, SubRequest, SubResponse
from .multipart_answers import ResponseWriter
from .multipart_requests import RequestReader

__all__ = ["JSON", "MULTIPART", "Metered", "Reader", "Writer", "negotiate"]

MULTIPART = "multipart/mixed"
JSON = MEDIA_TYPE


class Metered(Protocol):
    """A reader with a work meter: ``scanned``, the bytes it examined so far (searches count
    the bytes they looked at, walks their steps). It lets tests and the fuzzer check that the
    work grows no faster than the body (see :attr:`.multipart.MultipartReader.scanned`)."""

    @property
    def scanned(self) -> int: ...


class Reader(Metered, Protocol):
    def feed(self, data: bytes) -> None: ...

    def close(self) -> list[SubRequest]: ...


class Writer(Protocol):
    #: Whether a failed atomic group is answered by one part standing for all its members
    #: (multipart's changesets, nested), rather than by one answer per member.
    collapses_failed_groups: bool

    @property
    def content_type(self) -> str: ...

    @property
    def next_opening(self) -> bytes:
        """The bytes the next part written will begin with, if they are certain now (else
        ``b""``): sent ahead with the parts before it, they end those parts for a reader."""
        ...

    def start(self) -> bytes: ...

    def part(self, response: SubResponse, request: SubRequest) -> bytes: ...

    def part_pieces(
        self, response: SubResponse, request: SubRequest
    ) -> tuple[bytes, bytes | bytearray, bytes]: ...

    def close(self) -> bytes: ...


def negotiate(
    content_type: str | None,
    limits: Limits,
    *,
    json_dialect: JsonDialect = "graph",
    flat_changesets: bool = False,
    odata: bool = False,
) -> tuple[Reader, Writer]:
    """The reader for a batch body of ``content_type``, and the writer of its answer (a JSON
    answer in ``json_dialect``; a multipart one with each member of a changeset as a part of
    its own if ``flat_changesets``, spelt as OData's reference servers write it if ``odata``).

    Only the two batch media types are accepted: neither can be sent by a cross-site HTML form
    without a CORS preflight (``multipart/form-data``, ``text/plain`` and urlencoded can).
    """
    media_type, params = parse_media_type(content_type) if content_type else ("", {})
    if media_type == MULTIPART:
        writer = ResponseWriter(flat=flat_changesets, odata=odata)
        return RequestReader(boundary_param(params), limits), writer
    if media_type == JSON:
        return JsonRequestReader(limits), JsonResponseWriter(json_dialect)
    raise UnsupportedMediaType(
        f"a batch must be {MULTIPART} or {JSON}, not {media_type or 'untyped'!r}"
    )
