"""Dependencies between the requests of a batch, checked before anything runs.

A request may depend only on requests before it, so the graph is acyclic by construction and
the request order is always a valid execution order. A dependency may name an atomic group
(OData JSON's ``dependsOn``, or a changeset's boundary): it stands for every member.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import MalformedBatch
from .model import SubRequest

__all__ = ["dependency_indices", "request_key", "request_names"]


def request_key(request_id: str) -> str:
    """An id as dependencies name it: ``<a>`` and ``a`` are the same request."""
    request_id = request_id.strip()
    if request_id.startswith("<") and request_id.endswith(">"):
        return request_id[1:-1]
    return request_id


def dependency_indices(requests: Sequence[SubRequest]) -> list[tuple[int, ...]]:
    """For each request, the indices of the requests it depends on.

    Refuses (400, naming the request) a dependency on an unknown id, on itself, on its own
    group or on a later request, and ambiguous ids (or group names) when any request has
    dependencies.
    """
    if not any(request.depends_on for request in requests):
        return [()] * len(requests)
    positions = request_names(requests)
    plan = []
    for index, request in enumerate(requests):
        indices: list[int] = []
        for name in request.depends_on:
            named = positions.get(request_key(name))
            if named is None:
                raise MalformedBatch(f"depends on an unknown request {name!r}", part=index + 1)
            if index in named:
                what = "itself" if len(named) == 1 else "its own group"
                raise MalformedBatch(
                    f"depends on {what} ({name!r}): a dependency cycle", part=index + 1
                )
            if named.start > index:
                raise MalformedBatch(
                    f"depends on {name!r}, which comes later: a request may only depend on "
                    "earlier ones (this also rules out cycles)",
                    part=index + 1,
                )
            indices.extend(named)
        plan.append(tuple(indices))
    return plan


def request_names(requests: Sequence[SubRequest]) -> dict[str, range]:
    """What each id and group name (:func:`request_key`) names: the requests it stands for.

    Refuses (400) a name given twice: a dependency or a reference naming it would be
    ambiguous.
    """
    positions: dict[str, range] = {}
    for index, request in enumerate(requests):
        if request.content_id is not None:
            _name(positions, request_key(request.content_id), range(index, index + 1), index)
        group = request.group
        if group is not None and group.first == index:
            _name(positions, request_key(group.name), range(index, index + group.size), index)
    return positions


def _name(positions: dict[str, range], key: str, named: range, index: int) -> None:
    """Record that ``key`` names the requests ``named``; refuse a name given twice."""
    if key in positions:
        raise MalformedBatch(
            f"the id {key!r} is used twice: a dependency or a reference naming it would be "
            "ambiguous",
            part=index + 1,
        )
    positions[key] = named
