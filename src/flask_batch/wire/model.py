"""The values that flow between the reader, the dispatcher and the writer.

The per-part values are named tuples: immutable like frozen dataclasses, and built about three
times faster (a frozen dataclass sets each field through ``object.__setattr__``), which counts
when every part of a batch makes three of them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_LIMITS",
    "KIB",
    "MIB",
    "UNLIMITED",
    "Group",
    "Headers",
    "Limits",
    "Part",
    "SubRequest",
    "SubResponse",
    "filled_tuple",
    "first_header",
    "option",
]

#: Header fields as (name, value) pairs, in order, repeats kept: the names as sent.
Headers = tuple[tuple[str, str], ...]

KIB = 1024
MIB = 1024 * KIB


def option(default: Any, doc: str) -> Any:
    """A dataclass field that is an endpoint option: its default and what it does.

    Every option is declared once, so (``flask_batch.options.OPTIONS`` reads the fields of
    :class:`Limits`, ``Execution``, ``Conventions`` and ``Routing``: names, defaults, docs,
    config keys).
    """
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class Limits:
    """Everything a batch client controls is bounded; exceeding a bound answers ``413``."""

    max_parts: int = option(
        100,
        "sub-requests in one batch, each member of an atomic group counted (Google's APIs allow "
        "100 to 1,000)",
    )
    max_group_size: int = option(
        1000,
        "requests in one atomic group (a changeset, a JSON atomicityGroup), as OData's "
        "libraries allow by default",
    )
    max_body_size: int = option(
        16 * MIB, "bytes of the whole batch body (after decompression, if it came compressed)"
    )
    max_part_size: int = option(
        8 * MIB,
        "bytes of one part: its MIME headers and its HTTP message, and the blanks after the "
        "boundary that ends it (held until their line ends)",
    )
    max_header_size: int = option(
        16 * KIB,
        "bytes of one header block: a part's MIME headers, or its request line and HTTP headers",
    )
    max_headers: int = option(
        100, "fields in one header block (a flood of tiny headers costs more than its bytes)"
    )
    deadline: float | None = option(
        None,
        "seconds the batch may run (its upload included); parts not started by then are "
        "answered 503; None: no deadline",
    )
    max_answer_part_size: int = option(
        16 * MIB, "bytes of one part's answer body: more is answered 502 instead"
    )
    max_answer_size: int = option(
        64 * MIB, "bytes of the answer bodies of the whole batch: a part past it is answered 502"
    )

    def __post_init__(self) -> None:
        for declared in fields(self):
            value = getattr(self, declared.name)
            if declared.name == "deadline":
                if value is not None and (
                    type(value) not in (int, float) or not 0 < value < float("inf")
                ):
                    raise ValueError(
                        f"deadline must be a positive number of seconds or None, not {value!r}"
                    )
            elif type(value) is not int or value < 1:
                raise ValueError(f"{declared.name} must be a positive integer, not {value!r}")


#: The limits of a route configured with none.
DEFAULT_LIMITS = Limits()
#: What a client accepts from its server: the server's own limits bound what it sends.
UNLIMITED = Limits(
    max_parts=sys.maxsize,
    max_group_size=sys.maxsize,
    max_body_size=sys.maxsize,
    max_part_size=sys.maxsize,
    max_header_size=sys.maxsize,
    max_headers=sys.maxsize,
    max_answer_part_size=sys.maxsize,
    max_answer_size=sys.maxsize,
)


@dataclass(frozen=True, slots=True)
class Group:
    """An atomic group of requests (an OData changeset, a JSON ``atomicityGroup``): its
    members are adjacent in the batch, run in order, and succeed or fail together. The
    transaction hook is given one (:mod:`flask_batch.transactions`); every member's
    :attr:`SubRequest.group` is the same object, which is how members know their group."""

    #: The group's name: a changeset's boundary, a JSON ``atomicityGroup`` value.
    name: str
    #: How many members the group has.
    size: int
    #: The index (in the batch, from 0) of the group's first member.
    first: int


class Part(NamedTuple):
    """One body part of a multipart message: its MIME headers and its raw content."""

    headers: Headers
    #: A large part's content is the reader's own buffer, handed over rather than copied.
    content: bytes | bytearray

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return first_header(self.headers, name)


#: A named tuple of ``cls`` from every one of its fields in order (``filled_tuple(cls, (...))``),
#: without the Python-level ``__new__`` a named tuple's class has: its defaults are not
#: applied, so every field must be given. For the few made once a part on the hot paths.
filled_tuple = tuple.__new__


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
    invalid_reason: str | None = None
    #: The atomic group this request is a member of, or None.
    group: Group | None = None


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
