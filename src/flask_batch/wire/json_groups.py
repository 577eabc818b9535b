"""The atomicity groups of a JSON batch, as its requests are read (OData JSON Format 4.01
section 19.1): the JSON form of an atomic group, which multipart writes as a changeset."""

from __future__ import annotations

from .errors import LimitExceeded, MalformedBatch
from .model import Group, Limits, SubRequest

__all__ = ["AtomicityGroups"]


class AtomicityGroups:
    """The atomicity groups of the requests being read (OData JSON 4.01 section 19.1): the
    members of a group are adjacent, at most ``max_group_size`` of them, and its name is no
    request's id (``dependsOn`` names either). Each member gets the group once it is closed."""

    def __init__(self, requests: list[SubRequest], limits: Limits) -> None:
        self._requests = requests
        self._limits = limits
        self._names: set[str] = set()
        #: A group was seen: every request from now on is looked at (its id, its group).
        self.seen = False
        self._open: str | None = None  # the group the last request was in
        self._first = 0  # the index of its first member

    def add(self, request_id: str, group: str | None, ids: set[str], index: int) -> None:
        """Request ``index`` (1-based), about to be added, is in ``group`` (or in none)."""
        if request_id in self._names:
            raise MalformedBatch(
                f"the id {request_id!r} is the name of an atomicity group: dependsOn could not "
                "tell them apart",
                part=index,
            )
        if group != self._open:
            self.close()
            if group is not None:
                if group in self._names:
                    raise MalformedBatch(
                        f"the members of the atomicity group {group!r} are not adjacent: this "
                        "request follows others outside it",
                        part=index,
                    )
                if group in ids:
                    raise MalformedBatch(
                        f"the atomicity group {group!r} has the name of a request's id: "
                        "dependsOn could not tell them apart",
                        part=index,
                    )
                self._names.add(group)
                self.seen = True
                self._open, self._first = group, index - 1
        if group is not None and index - self._first > self._limits.max_group_size:
            raise LimitExceeded.of(
                self._limits,
                "max_group_size",
                f"the atomicity group {group!r} has more than {{value}} requests",
                part=index,
            )

    def close(self) -> None:
        """The open group (if any) has all its members: give them their group."""
        if self._open is None:
            return
        requests, first = self._requests, self._first
        group = Group(self._open, len(requests) - first, first)
        requests[first:] = [request._replace(group=group) for request in requests[first:]]
        self._open = None
