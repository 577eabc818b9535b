"""How big a batch may be, and how a queue is cut into batches that fit: no I/O.

What a client knows about its endpoint's limits comes from three places, most trusted last:

- *configured*: ``max_parts=`` / ``max_body_size=`` given to the client, an upper bound it
  never exceeds;
- *discovered*: the document a ``GET`` on the batch URL answers (once per URL, cached);
- *learned*: the ``413`` problem body of a refused batch (``{"limit": "max_parts",
  "value": 100}``), which then is re-split and re-sent.

Every known value bounds a batch (the smallest wins). Knowing nothing, a client assumes the
server's defaults (100 parts, 16 MiB), but only softly: a request that alone exceeds them is
still sent, and the server decides.

What was discovered or learned, with whether the endpoint takes gzip bodies, is an
:class:`EndpointKnowledge`, which the clients of one batch URL share (the front ends keep
one per URL in :data:`~flask_batch.client._drivers.KNOWN_ENDPOINTS`): a new client finds it
known. The configured limits stay the client's own, and bound only it.

Requests that depend on each other (``depends_on``) form a group that is never split: it goes
in one batch, so the server orders it and answers ``424`` when a dependency fails. So do the
members of an atomic group (a changeset), which the server runs as one: a group is bounded by
the endpoint's ``max_group_size`` too, known (discovered, or learned from a ``413``) or assumed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ...wire.content_coding import accepts_gzip
from ...wire.model import Limits
from .queueing import origin

#: What a client assumes before it knows better: the server's own defaults.
DEFAULT_LIMITS = Limits()
#: The limits a ``413`` can name that bound a whole batch (re-split and re-send).
BATCH_LIMITS = ("max_parts", "max_body_size")
#: The limits a ``413`` can name that one part exceeds (that part cannot be sent at all).
PART_LIMITS = ("max_part_size", "max_header_size", "max_headers")
#: The limits a discovery reads: those of a batch, and the members of an atomic group.
DISCOVERED_LIMITS = (*BATCH_LIMITS, "max_group_size")


@dataclass(eq=False)
class EndpointKnowledge:
    """What is known of one batch endpoint beyond a client's own configuration: what its
    description said and what its answers taught. Shared by the clients of its batch URL, so
    no lock: every write is one store of an attribute or a dict item (atomic in Python), and
    batches that learn from several threads at once leave only values some answer gave."""

    #: The limits its description gave.
    discovered: dict[str, int] = field(default_factory=dict)
    #: The limits a ``413`` named.
    learned: dict[str, int] = field(default_factory=dict)
    #: Whether a discovery was tried (it is not tried again, answered or not).
    described: bool = False
    #: The discovery document, once a discovery succeeded.
    document: dict[str, Any] | None = None
    #: Whether it takes batch bodies in gzip: it said so in its description or the
    #: ``Accept-Encoding`` of an answer (RFC 9110, 12.5.3).
    takes_gzip: bool = False
    #: A compressed batch was answered ``415`` (something on the way refuses what the
    #: endpoint says it takes): nothing more is compressed.
    gzip_refused: bool = False


def endpoint_of(batch_url: str) -> tuple[tuple[str, str, int], str, str]:
    """What names an endpoint whatever the spelling of its URL: its origin, path and query."""
    parts = urlsplit(batch_url)
    return origin(parts.scheme, parts.hostname or "", parts.port), parts.path or "/", parts.query


class KnownLimits:
    """What one client knows about its endpoint's limits; shared by all its batches.

    ``shared`` gives the :class:`EndpointKnowledge` the clients of the batch URL share; it is
    asked again before each run (:meth:`renew`), so a client sees what others learned, and
    knowledge that expired or was forgotten is gathered again. Without it, the client knows
    only what it learns itself.
    """

    def __init__(
        self,
        *,
        max_parts: int | None = None,
        max_body_size: int | None = None,
        discover: bool = True,
        compress_bodies: bool | None = None,
        shared: Callable[[], EndpointKnowledge] | None = None,
    ) -> None:
        for name, value in (("max_parts", max_parts), ("max_body_size", max_body_size)):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
        if compress_bodies is not None and type(compress_bodies) is not bool:
            raise ValueError(
                f"compress_bodies must be True, False or None, not {compress_bodies!r}"
            )
        self._compress = compress_bodies
        self._configured = {"max_parts": max_parts, "max_body_size": max_body_size}
        self._discover = discover
        self._shared = shared
        self._known = EndpointKnowledge() if shared is None else shared()

    def renew(self) -> None:
        """Take the shared knowledge as it is now (before a run)."""
        if self._shared is not None:
            self._known = self._shared()

    @property
    def discoverable(self) -> bool:
        """Whether discovery may still be tried (False once tried, or when turned off)."""
        return self._discover and not self._known.described

    @property
    def document(self) -> dict[str, Any] | None:
        """The discovery document, once a discovery succeeded."""
        return self._known.document

    @property
    def takes_gzip(self) -> bool:
        """Whether the endpoint takes batch bodies in gzip, as far as is known (False for
        good after a ``415`` to one)."""
        return self._known.takes_gzip and not self._known.gzip_refused

    @property
    def compresses(self) -> bool:
        """Whether a large batch body goes in gzip: as ``compress_bodies`` says (True: from
        the first batch, for an endpoint the caller knows takes it; False: never), else as
        the endpoint said; never after a ``415`` to one."""
        if self._compress is False or self._known.gzip_refused:
            return False
        return self._compress is True or self._known.takes_gzip

    def _values(self, name: str) -> list[int]:
        configured = self._configured.get(name)
        values = [] if configured is None else [configured]
        for source in (self._known.discovered, self._known.learned):
            if name in source:
                values.append(source[name])
        return values

    def bound(self, name: str) -> tuple[int, bool]:
        """The limit ``name`` to keep to, and whether it is known (True) or assumed."""
        values = self._values(name)
        if values:
            return min(values), True
        default: int = getattr(DEFAULT_LIMITS, name)
        return default, False

    @property
    def max_parts(self) -> int:
        return self.bound("max_parts")[0]

    @property
    def max_body_size(self) -> int:
        return self.bound("max_body_size")[0]

    @property
    def max_group_size(self) -> int:
        return self.bound("max_group_size")[0]

    @property
    def groups(self) -> str | None:
        """How the endpoint said it runs atomic groups (its description's ``groups``):
        ``"atomic"``, ``"in-order"`` (without atomicity: a member's write stays applied when
        a later one fails), ``"refused"``; None if it did not say (a server that predates
        them says nothing, and is left to answer)."""
        said = None if self.document is None else self.document.get("groups")
        return said if isinstance(said, str) else None

    def discovered(self, document: object) -> None:
        """Take what a discovery answered (None: it failed); discovery is not tried again."""
        known = self._known
        known.described = True
        if not isinstance(document, Mapping):
            return
        known.document = dict(document)
        codings = document.get("content_codings")
        if isinstance(codings, list):
            known.takes_gzip = "gzip" in codings
        for name in DISCOVERED_LIMITS:
            value = document.get(name)
            if type(value) is int and value > 0:
                known.discovered[name] = value

    def heard(self, accept_encoding: str | None) -> None:
        """An answer's ``Accept-Encoding`` (None: it had none, and says nothing new)."""
        if accept_encoding is not None:
            self._known.takes_gzip = accepts_gzip(accept_encoding)

    def refuse_gzip(self) -> None:
        """A compressed batch was answered ``415``: the rest go as they are."""
        self._known.gzip_refused = True

    def learn(self, name: str, value: int) -> None:
        """A ``413`` said the limit ``name`` (of a batch, or of a group) is ``value``."""
        self._known.learned[name] = value

    def __repr__(self) -> str:
        return f"<KnownLimits max_parts={self.max_parts} max_body_size={self.max_body_size}>"


def description(status: int, body: bytes) -> object:
    """What a discovery (``GET`` on the batch URL) answered: its JSON document when the
    status is 200, else None (not JSON either: None)."""
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class TooLarge:
    """What the problem body of a ``413`` (Content Too Large) says: which limit, its value,
    which part (1-based) and, in a changeset, which member of it."""

    limit: str | None
    value: int | None
    part: int | None
    member: int | None = None


def read_too_large(problem: object) -> TooLarge:
    """The limit a ``413`` problem document names; fields it lacks or garbles are None."""
    if not isinstance(problem, Mapping):
        return TooLarge(None, None, None)
    limit = problem.get("limit")
    value, part, member = (_positive(problem.get(name)) for name in ("value", "part", "member"))
    return TooLarge(limit if isinstance(limit, str) else None, value, part, member)


def _positive(value: object) -> int | None:
    return value if type(value) is int and value > 0 else None


def groups_of(indices: Sequence[int], depends_on: Mapping[int, Sequence[int]]) -> list[list[int]]:
    """``indices`` (in order) cut into dependency groups: connected by ``depends_on``.

    Only dependencies among ``indices`` count (the others are already answered). Groups come
    in the order of their first member, members in order.
    """
    if not any(depends_on.get(index) for index in indices):
        return [[index] for index in indices]  # the usual case: no request depends on another
    present = set(indices)
    parent = {index: index for index in indices}

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for index in indices:
        for dependency in depends_on.get(index, ()):
            if dependency in present:
                a, b = root(index), root(dependency)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for index in indices:
        groups.setdefault(root(index), []).append(index)
    return list(groups.values())


def pack(
    groups: Sequence[Sequence[int]],
    sizes: Mapping[int, int],
    *,
    max_parts: int,
    max_body_size: int,
    overhead: int,
    separator: int = 0,
    first_only: bool = False,
) -> list[list[int]]:
    """Groups packed, in order, into batches of at most ``max_parts`` parts and
    ``max_body_size`` bytes; a batch's body is ``overhead`` plus its parts' ``sizes``, with
    ``separator`` bytes between parts. A group is never split: one that alone exceeds a
    limit gets a batch of its own (the caller decides whether to send it). ``first_only``:
    stop once the first batch is closed (the groups after it are not looked at).
    """
    batches: list[list[int]] = []
    current: list[int] = []
    current_size = overhead
    for group in groups:
        # Most groups are a request alone: its size without a generator.
        size = sizes[group[0]] if len(group) == 1 else sum(sizes[index] for index in group)
        size += separator * len(group)
        fits = (
            len(current) + len(group) <= max_parts
            and current_size + size - (0 if current else separator) <= max_body_size
        )
        if current and not fits:
            batches.append(current)
            if first_only:
                return batches
            current, current_size = [], overhead
        if not current:
            size -= separator
        current += group
        current_size += size
    if current:
        batches.append(current)
    return batches


def body_size(
    indices: Sequence[int], sizes: Mapping[int, int], *, overhead: int, separator: int = 0
) -> int:
    """The body size of a batch of ``indices`` (as :func:`pack` counts it)."""
    if not indices:
        return overhead
    return overhead + sum(sizes[index] for index in indices) + separator * (len(indices) - 1)
