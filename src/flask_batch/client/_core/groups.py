"""The atomic groups of a run, as plain values: which requests are one group, which part of
a batch a server's problem names, and what status a group failed with. No I/O."""

from __future__ import annotations

from collections.abc import Sequence

from ...wire.model import Group, SubRequest

__all__ = ["culprit", "failed_with", "group_members", "units"]


def units(groups: Sequence[Group | None]) -> list[list[int]]:
    """The places of requests in a batch, given each one's group, cut into what the batch
    answers as one: a request, or a group's members (adjacent, sharing their :class:`Group`)."""
    found: list[list[int]] = []
    for index, group in enumerate(groups):
        if group is not None and index and groups[index - 1] is group:
            found[-1].append(index)
        else:
            found.append([index])
    return found


def group_members(requests: Sequence[SubRequest]) -> dict[int, range]:
    """The members of each atomic group of ``requests``, by its first member's index;
    ``ValueError`` unless each group's members are adjacent and all of them are there."""
    groups: dict[int, range] = {}
    for index, request in enumerate(requests):
        group = request.group
        if group is None:
            continue
        if index == group.first:
            members = range(index, index + group.size)
            if members.stop <= len(requests) and all(requests[i].group is group for i in members):
                groups[index] = members
                continue
        elif group.first in groups and index in groups[group.first]:
            continue  # (the group at group.first is this very one: checked there)
        raise ValueError("the members of an atomic group must be queued one after another")
    return groups


def failed_with(statuses: list[int]) -> int | None:
    """The status a request, or a group, failed with: a request's own; a group's first
    failing member's, one answered ``424`` (not run, or rolled back) only if all are."""
    if len(statuses) == 1:
        return statuses[0]
    failing = [status for status in statuses if status >= 400]
    return next((status for status in failing if status != 424), failing[0] if failing else None)


def culprit(
    groups: Sequence[Group | None], part: int | None, member: int | None, one_part: bool
) -> int | None:
    """The place, in a batch whose requests are in ``groups``, of the request a problem names
    by its ``part`` (and ``member`` inside a changeset), or None. ``one_part``: a group is one
    part (a multipart changeset), not a part per member (JSON)."""
    if part is None:
        return None
    if not one_part:
        return part - 1 if part <= len(groups) else None
    found = units(groups)
    if part > len(found):
        return None
    unit = found[part - 1]
    return unit[member - 1] if member is not None and member <= len(unit) else unit[0]
