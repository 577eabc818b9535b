"""The values that flow between the reader, the dispatcher and the writer.

The per-part values are named tuples: immutable like frozen dataclasses, and built about three
times faster (a frozen dataclass sets each field through ``object.__setattr__``), which counts
when every part of a batch makes three of them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from typing import NamedTuple

#: Header fields as (name, value) pairs, in order, repeats kept: the names as sent.
Headers = tuple[tuple[str, str], ...]

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class Limits:
    """Everything a batch client controls is bounded; exceeding a bound answers ``413``."""

    #: Sub-requests in one batch (Google's APIs allow 100 to 1,000).
    max_parts: int = 100
    #: Bytes of the whole multipart body (after decompression, if it came compressed).
    max_body_size: int = 16 * MIB
    #: Bytes of one part (its MIME headers plus the embedded HTTP message, and the blanks
    #: after the boundary that ends it, which are held until their line ends).
    max_part_size: int = 8 * MIB
    #: Bytes of one header block: a part's MIME headers, or its HTTP request line and headers.
    max_header_size: int = 16 * KIB
    #: Fields in one header block (a flood of tiny headers costs more than its bytes say).
    max_headers: int = 100
    #: Seconds the batch may run; parts not started by then are answered 503. None: no deadline.
    deadline: float | None = None
    #: Bytes of one part's answer body: more is answered 502 instead.
    max_answer_part_size: int = 16 * MIB
    #: Bytes of the answer bodies of the whole batch: a part past it is answered 502 instead.
    max_answer_size: int = 64 * MIB

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "deadline":
                if value is not None and (
                    type(value) not in (int, float) or not 0 < value < float("inf")
                ):
                    raise ValueError(
                        f"deadline must be a positive number of seconds or None, not {value!r}"
                    )
            elif type(value) is not int or value < 1:
                raise ValueError(f"{field.name} must be a positive integer, not {value!r}")

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls))


#: What a client accepts from its server: the server's own limits bound what it sends.
UNLIMITED = Limits(
    max_parts=sys.maxsize,
    max_body_size=sys.maxsize,
    max_part_size=sys.maxsize,
    max_header_size=sys.maxsize,
    max_headers=sys.maxsize,
    max_answer_part_size=sys.maxsize,
    max_answer_size=sys.maxsize,
)


class Part(NamedTuple):
    """One body part of a multipart message: its MIME headers and its raw content."""

    headers: Headers
    #: A large part's content is the reader's own buffer, handed over rather than copied.
    content: bytes | bytearray

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return first_header(self.headers, name)


class SubRequest(NamedTuple):
    """An HTTP request carried by one part, exactly as the client wrote it."""

    method: str
    #: The request-target as sent: origin-form, absolute-form, or relative to the batch URL.
    target: str
    headers: Headers
    #: A bytearray when the part was large: the reader's buffer, handed over, not copied.
    body: bytes | bytearray
    #: The part's id as sent (multipart ``Content-ID``, JSON ``id``), or None.
    content_id: str | None = None
    #: Ids of earlier requests that must succeed (2xx) before this one runs.
    depends_on: tuple[str, ...] = ()
    #: Why this request is answered 400 without running (the rest of the batch goes on).
    refusal: str | None = None


class SubResponse(NamedTuple):
    """The HTTP response to one sub-request."""

    status: int
    reason: str
    headers: Headers
    #: A bytearray when an application streamed it in several chunks (gathered in one buffer).
    body: bytes | bytearray


def first_header(headers: Headers, name: str) -> str | None:
    """The first value of ``name`` in ``headers`` (case-insensitive), or None."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None
