"""The two batch formats as a client writes and reads them: one object each.

A client looks its format up once, by the name of its ``format=`` option
(:func:`format_named`, as the server's :func:`~flask_batch.wire.formats.negotiate` looks up a
batch's by its media type); nothing else compares names. Each run gets its own instance: a
multipart one holds the run's boundary and Content-ID prefix. Both are thin over the wire
core's encoders and readers (:mod:`flask_batch.wire.multipart_format`,
:mod:`flask_batch.wire.json_requests`, :mod:`flask_batch.wire.json_answers`).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal

from ...wire.formats import JSON, MULTIPART
from ...wire.json_answers import read_json_responses
from ...wire.json_requests import encode_json_request, join_json_requests
from ...wire.media_type import new_boundary
from ...wire.model import SubRequest, SubResponse
from ...wire.multipart import encode_close
from ...wire.multipart_format import encode_requests, read_responses

#: What a client's ``format=`` option may say.
FormatName = Literal["multipart", "json"]


class Format(ABC):
    """How one run writes its batches and reads their answers."""

    #: The name a client's ``format=`` option gives.
    name: ClassVar[FormatName]
    #: The media type of a batch answer.
    answer_type: ClassVar[str]
    #: What an answer calls a request's id (in messages).
    id_name: ClassVar[str]
    #: The Content-Type of the run's batch requests.
    content_type: str
    #: Bytes of a body with no part, and between two parts: what packing counts.
    overhead: int
    separator: int

    @classmethod
    @abstractmethod
    def check(cls, request: SubRequest) -> None:
        """Refuse now (``ValueError``) a request the format cannot carry."""

    @abstractmethod
    def content_id(self, index: int) -> str:
        """The id of the request queued at ``index``."""

    @abstractmethod
    def encode(self, request: SubRequest) -> bytes:
        """One request, as it goes in a batch body."""

    @abstractmethod
    def join(self, parts: Sequence[bytes]) -> bytes:
        """A batch body of requests each :meth:`encode`-d."""

    @abstractmethod
    def read(self, content_type: str | None, body: bytes) -> list[tuple[str | None, SubResponse]]:
        """A batch answer as (id of the request it answers, response) pairs;
        :class:`~flask_batch.wire.errors.MalformedBatch` if it cannot be read."""


class MultipartFormat(Format):
    """The Google/OData ``multipart/mixed`` format."""

    name = "multipart"
    answer_type = MULTIPART
    id_name = "Content-ID"
    separator = 0

    def __init__(self) -> None:
        self._boundary = new_boundary()
        #: The close delimiter that ends each body of the run.
        self._close = encode_close(self._boundary)
        self._prefix = uuid.uuid4().hex
        self.content_type = f"{MULTIPART}; boundary={self._boundary}"
        self.overhead = len(self._close)

    @classmethod
    def check(cls, request: SubRequest) -> None:
        """Any request: a part carries any body."""

    def content_id(self, index: int) -> str:
        return f"<{self._prefix}+{index}>"

    def encode(self, request: SubRequest) -> bytes:
        return encode_requests([request], self._boundary)[: -len(self._close)]

    def join(self, parts: Sequence[bytes]) -> bytes:
        return b"".join(parts) + self._close

    def read(self, content_type: str | None, body: bytes) -> list[tuple[str | None, SubResponse]]:
        return read_responses(content_type, body)


class JsonFormat(Format):
    """The JSON format of OData 4.01 and Microsoft Graph."""

    name = "json"
    answer_type = JSON
    id_name = "id"
    content_type = JSON
    overhead = len(join_json_requests([]))
    separator = len(join_json_requests([b"", b""])) - overhead

    @classmethod
    def check(cls, request: SubRequest) -> None:
        encode_json_request(request)

    def content_id(self, index: int) -> str:
        return str(index + 1)

    def encode(self, request: SubRequest) -> bytes:
        return encode_json_request(request)

    def join(self, parts: Sequence[bytes]) -> bytes:
        return join_json_requests(parts)

    def read(self, content_type: str | None, body: bytes) -> list[tuple[str | None, SubResponse]]:
        return read_json_responses(body)


_FORMATS: dict[str, type[Format]] = {kind.name: kind for kind in (MultipartFormat, JsonFormat)}


def format_named(name: object) -> type[Format]:
    """The format a client's ``format=`` option names; ``ValueError`` for another name."""
    found = _FORMATS.get(name) if isinstance(name, str) else None
    if found is None:
        names = " or ".join(map(repr, _FORMATS))
        raise ValueError(f"format must be {names}, not {name!r}")
    return found
