"""How big a batch may be, and how a queue is cut into batches that fit: no I/O.

What a client knows about its endpoint's limits comes from three places, most trusted last:

- *configured*: ``max_parts=`` / ``max_body_size=`` given to the client, an upper bound it
  never exceeds;
- *discovered*: the document a ``GET`` on the batch URL answers (once per client, cached);
- *learned*: the ``413`` problem body of a refused batch (``{"limit": "max_parts",
  "value": 100}``), which then is re-split and re-sent.

Every known value bounds a batch (the smallest wins). Knowing nothing, a client assumes the
server's defaults (100 parts, 16 MiB), but only softly: a request that alone exceeds them is
still sent, and the server decides.

Requests that depend on each other (``depends_on``) form a group that is never split: it goes
in one batch, so the server orders it and answers ``424`` when a dependency fails. So do the
members of an atomic group (a changeset), which the server runs as one: a group is bounded by
the endpoint's ``max_group_size`` too, known (discovered, or learned from a ``413``) or assumed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...wire.content_coding import accepts_gzip
from ...wire.model import Limits

#: What a client assumes before it knows better: the server's own defaults.
DEFAULT_LIMITS = Limits()
#: The limits a ``413`` can name that bound a whole batch (re-split and re-send).
BATCH_LIMITS = ("max_parts", "max_body_size")
#: The limits a ``413`` can name that one part exceeds (that part cannot be sent at all).
PART_LIMITS = ("max_part_size", "max_header_size", "max_headers")
#: The limits a discovery reads: those of a batch, and the members of an atomic group.
DISCOVERED_LIMITS = (*BATCH_LIMITS, "max_group_size")


class KnownLimits:
    """What one client knows about its endpoint's limits; shared by all its batches."""

    def __init__(
        self,
        *,
        max_parts: int | None = None,
        max_body_size: int | None = None,
        discover: bool = True,
    ) -> None:
        for name, value in (("max_parts", max_parts), ("max_body_size", max_body_size)):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
        self._configured = {"max_parts": max_parts, "max_body_size": max_body_size}
        self._discovered: dict[str, int] = {}
        self._learned: dict[str, int] = {}
        #: Whether discovery may still be tried (False once tried, or when turned off).
        self.discoverable = discover
        #: The discovery document, once a discovery succeeded.
        self.document: dict[str, Any] | None = None
        #: Whether the endpoint takes batch bodies in gzip: it said so in its description or
        #: the ``Accept-Encoding`` of an answer (RFC 9110, 12.5.3); False for good after a
        #: ``415`` to one (something on the way refuses what the endpoint says it takes).
        self.takes_gzip = False
        self._gzip_refused = False

    def _values(self, name: str) -> list[int]:
        configured = self._configured.get(name)
        values = [] if configured is None else [configured]
        for source in (self._discovered, self._learned):
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
        """Take what a discovery answered (None: it failed); discovery is not tried again.

        No lock: every write here and in :meth:`learn` is one store of an attribute or a
        dict item (atomic in Python), and readers never waited for one, so batches that
        learn from several threads at once leave only values some answer gave."""
        self.discoverable = False
        if not isinstance(document, Mapping):
            return
        self.document = dict(document)
        codings = document.get("content_codings")
        if isinstance(codings, list):
            self.takes_gzip = "gzip" in codings and not self._gzip_refused
        for name in DISCOVERED_LIMITS:
            value = document.get(name)
            if type(value) is int and value > 0:
                self._discovered[name] = value

    def heard(self, accept_encoding: str | None) -> None:
        """An answer's ``Accept-Encoding`` (None: it had none, and says nothing new)."""
        if accept_encoding is not None:
            self.takes_gzip = accepts_gzip(accept_encoding) and not self._gzip_refused

    def refuse_gzip(self) -> None:
        """A compressed batch was answered ``415``: the rest go as they are."""
        self.takes_gzip = False
        self._gzip_refused = True

    def learn(self, name: str, value: int) -> None:
        """A ``413`` said the limit ``name`` (of a batch, or of a group) is ``value``."""
        self._learned[name] = value

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
) -> list[list[int]]:
    """Groups packed, in order, into batches of at most ``max_parts`` parts and
    ``max_body_size`` bytes; a batch's body is ``overhead`` plus its parts' ``sizes``, with
    ``separator`` bytes between parts. A group is never split: one that alone exceeds a
    limit gets a batch of its own (the caller decides whether to send it).
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
