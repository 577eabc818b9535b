"""The two batch formats as a client writes and reads them: one object each.

A client looks its format up once, by the name of its ``format=`` option
(:func:`format_named`, as the server's :func:`~flask_batch.wire.formats.negotiate` looks up a
batch's by its media type); nothing else compares names. Each run gets its own instance: a
multipart one holds the run's boundary and Content-ID prefix. Both are thin over the wire
core's encoders and readers (:mod:`flask_batch.wire.multipart_requests`,
:mod:`flask_batch.wire.multipart_answers`, :mod:`flask_batch.wire.json_requests`,
:mod:`flask_batch.wire.json_answers`). An atomic group is a changeset in one, an
``atomicityGroup`` in the other: each says what a group may hold.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal

from ...wire.errors import BatchError
from ...wire.formats import JSON, MULTIPART
from ...wire.json_answers import read_json_responses
from ...wire.json_requests import encode_json_request, join_json_requests
from ...wire.media_type import new_boundary
from ...wire.model import Headers, SubRequest
from ...wire.multipart import encode_close
from ...wire.multipart_answers import AnswerStream, ReadAnswer, read_answers
from ...wire.multipart_requests import encode_request

#: What a client's ``format=`` option may say.
FormatName = Literal["multipart", "json"]
#: Methods that change nothing: OData's changesets cannot hold them.
_READS = frozenset({"GET", "HEAD"})


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
    #: Whether an atomic group is one part of a batch (a changeset) rather than one part per
    #: member: how the part a ``413`` names is found.
    group_is_one_part: ClassVar[bool]

    @classmethod
    @abstractmethod
    def check(cls, request: SubRequest, *, in_group: bool = False) -> None:
        """Refuse now (``ValueError``) a request the format cannot carry (``in_group``: as a
        member of an atomic group)."""

    @staticmethod
    def group_name() -> str:
        """A new atomic group's name: a changeset's boundary, an ``atomicityGroup``; random,
        so that it is no request's id and no body holds it."""
        return f"changeset_{uuid.uuid4().hex}"

    @abstractmethod
    def content_id(self, index: int) -> str:
        """The id of the request queued at ``index``."""

    @abstractmethod
    def encode(self, request: SubRequest, index: int) -> bytes:
        """One request (queued at ``index``: a group member's place in its group), as it goes
        in a batch body."""

    @abstractmethod
    def join(self, parts: Sequence[bytes]) -> bytes:
        """A batch body of requests each :meth:`encode`-d."""

    @abstractmethod
    def read(self, content_type: str | None, body: bytes) -> list[ReadAnswer]:
        """Every answer of a batch answer, with where it came;
        :class:`~flask_batch.wire.errors.MalformedBatch` if it cannot be read."""

    def stream(self, content_type: str | None) -> AnswerStream | None:
        """A reader of a batch answer as it arrives (:meth:`read`, piece by piece), or None
        if the format is read whole (or ``content_type`` says too little to stream it: the
        whole reading then says what is wrong)."""
        return None


class MultipartFormat(Format):
    """The Google/OData ``multipart/mixed`` format."""

    name = "multipart"
    answer_type = MULTIPART
    id_name = "Content-ID"
    separator = 0
    group_is_one_part = True

    def __init__(self) -> None:
        self._boundary = new_boundary()
        #: The close delimiter that ends each body of the run.
        self._close = encode_close(self._boundary)
        self._prefix = uuid.uuid4().hex
        self.content_type = f"{MULTIPART}; boundary={self._boundary}"
        self.overhead = len(self._close)
        #: The header blocks of the run's requests, encoded: requests repeat theirs.
        self._encoded_fields: dict[Headers, bytes] = {}

    @classmethod
    def check(cls, request: SubRequest, *, in_group: bool = False) -> None:
        """Any request (a part carries any body), but no read in a changeset (OData)."""
        if in_group and request.method in _READS:
            raise ValueError(
                f"a {request.method} request cannot be in a changeset: a changeset holds "
                "changes only (OData), and the server would refuse the whole batch; queue it "
                "outside the changeset"
            )

    def content_id(self, index: int) -> str:
        return f"<{self._prefix}+{index}>"

    def encode(self, request: SubRequest, index: int) -> bytes:
        group = request.group
        return encode_request(
            request,
            self._boundary,
            opens_group=group is not None and index == group.first,
            closes_group=group is not None and index == group.first + group.size - 1,
            seen=self._encoded_fields,
        )

    def join(self, parts: Sequence[bytes]) -> bytes:
        return b"".join(parts) + self._close

    def read(self, content_type: str | None, body: bytes) -> list[ReadAnswer]:
        return read_answers(content_type, body)

    def stream(self, content_type: str | None) -> AnswerStream | None:
        try:
            return AnswerStream(content_type)
        except BatchError:
            return None


class JsonFormat(Format):
    """The JSON format of OData 4.01 and Microsoft Graph."""

    name = "json"
    answer_type = JSON
    id_name = "id"
    content_type = JSON
    overhead = len(join_json_requests([]))
    separator = len(join_json_requests([b"", b""])) - overhead
    group_is_one_part = False

    @classmethod
    def check(cls, request: SubRequest, *, in_group: bool = False) -> None:
        """What the format can carry; an atomicity group holds any request."""
        encode_json_request(request)

    def content_id(self, index: int) -> str:
        return str(index + 1)

    def encode(self, request: SubRequest, index: int) -> bytes:
        return encode_json_request(request)

    def join(self, parts: Sequence[bytes]) -> bytes:
        return join_json_requests(parts)

    def read(self, content_type: str | None, body: bytes) -> list[ReadAnswer]:
        return [
            ReadAnswer(request_id, response, index, in_changeset=False)
            for index, (request_id, response) in enumerate(read_json_responses(body), start=1)
        ]


_FORMATS: dict[str, type[Format]] = {kind.name: kind for kind in (MultipartFormat, JsonFormat)}


def format_named(name: object) -> type[Format]:
    """The format a client's ``format=`` option names; ``ValueError`` for another name."""
    found = _FORMATS.get(name) if isinstance(name, str) else None
    if found is None:
        names = " or ".join(map(repr, _FORMATS))
        raise ValueError(f"format must be {names}, not {name!r}")
    return found
